"""The dashboard's market panels: listings awaiting review, revenue per holder per day, grants by state.

Amounts stay exact: summed as Decimal and sent as text, as statements give them.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from datawharf.market import ListingState
from gateway.market import Market
from gateway.market.review import listing_body

REVENUE_DAYS = 30


GRANT_STATES = ("PENDING", "APPROVED", "REJECTED", "REVOKED")


def grants_by_state(db: sqlite3.Connection) -> dict[str, int]:
    """How many data-use grants are in each state (every state, zero included)."""
    counts = dict.fromkeys(GRANT_STATES, 0)
    for row in db.execute("SELECT state, COUNT(*) FROM grants GROUP BY state"):
        counts[str(row[0])] = int(row[1])
    return counts


def market_overview(market: Market | None, now: float, db: sqlite3.Connection | None = None) -> dict[str, Any]:
    """``pending``: listings awaiting an operator's or an authority's decision, oldest first;
    ``revenue``: per UTC day, holder and currency, what holders were charged for over the last
    ``REVENUE_DAYS`` days, and the operator's fee apart (holder ""); ``grants``: grants by state."""
    grants = grants_by_state(db) if db is not None else dict.fromkeys(GRANT_STATES, 0)
    if market is None:
        return {"review": "off", "pending": [], "revenue": [], "grants": grants}
    store = market.store
    pending = []
    for state in (ListingState.PENDING, ListingState.AWAITING_AUTHORITY):
        for r in store.listings(state=state):
            body = listing_body(r)
            pending.append({"listing_id": r["listing_id"], "holder": r["holder"], "dataset": r["dataset"],
                            "version": r["version"], "state": r["state"], "title": body.title,
                            "classification": body.classification, "price_per_job": body.price_per_job,
                            "currency": body.currency, "pricing": body.pricing, "submitted_at": r["submitted_at"]})
    pending.sort(key=lambda x: x["submitted_at"])
    sums: dict[tuple[str, str, str], Decimal] = {}
    jobs: dict[tuple[str, str, str], int] = {}
    for c in store.charges(start=now - REVENUE_DAYS * 86400):
        key = (datetime.fromtimestamp(c["at"], timezone.utc).strftime("%Y-%m-%d"), c["holder"], c["currency"])
        sums[key] = sums.get(key, Decimal(0)) + Decimal(c["amount"])
        jobs[key] = jobs.get(key, 0) + 1
    # Newest day first; within a day the holders by name, then the operator's fee.
    order = sorted(sums, key=lambda k: (_newest_first(k[0]), k[1] == "", k[1], k[2]))
    revenue = [{"day": d, "holder": h, "currency": cur, "amount": str(sums[(d, h, cur)]), "jobs": jobs[(d, h, cur)]}
               for d, h, cur in order]
    return {"review": "required" if market.review.required else "off", "pending": pending, "revenue": revenue,
            "grants": grants}


def _newest_first(day: str) -> tuple[int, ...]:
    return tuple(-int(p) for p in day.split("-"))


__all__ = ["GRANT_STATES", "REVENUE_DAYS", "grants_by_state", "market_overview"]
