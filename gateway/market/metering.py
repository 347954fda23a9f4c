"""Metering: a job that ends DONE is charged from its contributing holders' approved listings.

    per-holder   each contributing holder is paid its own listing's price
    shared       one job price, the highest among the contributors' shared listings
                 (per currency), split by their declared weights (equal by default),
                 never by rows, which would tell each holder the others' sizes

Amounts are ``Decimal`` at the currency's minor unit. A split goes by largest
remainder (``datawharf.market.split``): the lines add up to the price exactly.
The operator's fee (``--fee-percent``) is a separate line on top of the holders',
paid by the buyer, rounded half-to-even. Refused, failed and cancelled jobs,
and holders that did not contribute, cost nothing. A job's lines are written
with one ``job_charged`` ledger entry, in its transaction, and name its seq.

A gateway that dies between a job's ``job_done`` entry and its ``job_charged``
entry leaves that job uncharged: the listings in force when it ended are not
reconstructed at restart (charging it later from today's prices would be
wrong). The ledger shows such a job as done without a charge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from datawharf.market import Pricing, fee, split
from datawharf.states import JobState, TaskState
from gateway.market.review import Review
from gateway.store import JobRow, SqliteStore

log = logging.getLogger("datawharf.gateway")


@dataclass(frozen=True)
class Line:
    holder: str  # '' on the fee line
    kind: str  # holder | fee
    listing_id: str
    amount: Decimal
    currency: str


def price_job(contributors: dict[str, tuple[str, Any] | None], fee_percent: Decimal) -> list[Line]:
    """The charge lines for one job: ``contributors`` maps each contributing holder to its approved
    (listing id, Terms), or None when it has none (it is paid nothing)."""
    lines: list[Line] = []
    shared: dict[str, dict[str, tuple[str, Any]]] = {}
    for holder, found in sorted(contributors.items()):
        if found is None:
            continue
        listing_id, terms = found
        if terms.pricing == Pricing.SHARED:
            shared.setdefault(terms.currency, {})[holder] = found
        else:
            lines.append(Line(holder, "holder", listing_id, terms.price, terms.currency))
    for currency, pool in sorted(shared.items()):
        price = max(t.price for _, t in pool.values())
        shares = split(price, {h: t.weight for h, (_, t) in pool.items()}, currency)
        lines += [Line(h, "holder", pool[h][0], shares[h], currency) for h in sorted(pool)]
    if fee_percent > 0:
        for currency in sorted({x.currency for x in lines}):
            owed = fee(sum((x.amount for x in lines if x.currency == currency), Decimal(0)), fee_percent, currency)
            if owed > 0:
                lines.append(Line("", "fee", "", owed, currency))
    return sorted(lines, key=lambda x: (x.kind != "holder", x.holder, x.currency))


class Meter:
    def __init__(self, store: SqliteStore, review: Review, *,
                 fee_percent: Decimal = Decimal(0)) -> None:
        if not Decimal(0) <= fee_percent <= 100:
            raise ValueError(f"the operator's fee of {fee_percent} % is outside 0..100")
        self.store = store
        self.review = review
        self.fee_percent = fee_percent

    def job_ended(self, ended: JobRow, dataset: str) -> None:
        """Charge ``ended`` (a job on ``dataset``) if it is DONE and not yet charged."""
        job = self.store.job(ended.job_id)
        if job is None or job.state != JobState.DONE or self.store.charges(job_id=job.job_id):
            return
        contributors = {t.party: self.review.approved(t.party, dataset)
                        for t in self.store.tasks(job.job_id) if t.state == TaskState.CONTRIBUTED}
        lines = price_job(contributors, self.fee_percent)
        if not lines:
            return
        at = job.finished_at

        def rows(seq: int) -> list[tuple[str, tuple[Any, ...]]]:
            return [("INSERT INTO charges (job_id, at, buyer, holder, kind, dataset, listing_id, amount, currency, "
                     "ledger_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (job.job_id, at, job.buyer, x.holder, x.kind, dataset, x.listing_id, str(x.amount), x.currency,
                      seq)) for x in lines]

        self.store.record_linked(
            "job_charged", rows, job_id=job.job_id,
            detail=", ".join(f"{x.holder or 'fee'} {x.amount} {x.currency}" for x in lines),
            evidence={"buyer": job.buyer, "dataset": dataset, "fee_percent": str(self.fee_percent),
                      "lines": [{"holder": x.holder, "kind": x.kind, "listing_id": x.listing_id,
                                 "amount": str(x.amount), "currency": x.currency} for x in lines]})
        log.info("job %s charged: %s", job.job_id, ", ".join(f"{x.holder or 'fee'} {x.amount} {x.currency}"
                                                             for x in lines))


__all__ = ["Line", "Meter", "price_job"]
