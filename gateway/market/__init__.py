"""The market: listing review, metering, statements and recognition between exchanges.

``Market`` holds the parts the gateway wires in: ``review`` (what may be in
the catalog), ``meter`` (charges at a job's end), statements and bundles.
The gRPC face is ``gateway.market.servicer.MarketServicer``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from decimal import Decimal
from typing import Any, Callable

from datawharf.errors import InvalidArgument
from datawharf.v1 import market_pb2
from gateway.market.bundles import open_bundle
from gateway.market.metering import Meter
from gateway.market.review import Review
from gateway.market.statements import build, check_request, month_range
from gateway.store import SqliteStore
from datawharf.pki import TrustStore, digest


class Market:
    def __init__(self, store: SqliteStore, trust: TrustStore | None, *, review_required: bool = True,
                 fee_percent: Decimal = Decimal(0), clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.trust = trust
        self.clock = clock
        self.review = Review(store, trust, required=review_required, clock=clock)
        self.meter = Meter(store, self.review, fee_percent=fee_percent)

    # ------------------------------------------------------------ statements
    def statement(self, *, party: str = "", buyer: str = "", month: str = "") -> market_pb2.Statement:
        check_request(party, buyer)
        start, end = month_range(month)
        rows = self.store.charges(holder=party or None, buyer=buyer or None, start=start, end=end)
        return build(rows, party=party, buyer=buyer, month=month)

    # ---------------------------------------------------------- recognition
    def import_bundle(self, raw: bytes, ca_pem: bytes, *, by: str) -> tuple[str, list[sqlite3.Row]]:
        """Verify ``raw`` under ``ca_pem`` and replace that exchange's listings here with it, whole."""
        if self.trust is not None and ca_pem.strip() == self.trust.ca_pem.strip():
            raise InvalidArgument("that is this exchange's own CA: a bundle is imported from another exchange")
        home, listings = open_bundle(raw, ca_pem)
        now = self.clock()
        bundle = digest(raw).hex()

        def rows(seq: int) -> list[tuple[str, tuple[Any, ...]]]:
            return [("DELETE FROM foreign_listings WHERE home = ?", (home,))] + [
                ("INSERT INTO foreign_listings (home, listing_id, holder, dataset, entry, imported_at, bundle) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (home, x.listing_id, x.holder, x.dataset, json.dumps(x.entry, sort_keys=True), now, bundle))
                for x in listings]

        self.store.record_linked("listings_imported", rows, detail=f"{len(listings)} listing(s) of {home} by {by}",
                                 evidence={"home_exchange": home, "bundle_digest": bundle, "imported_by": by,
                                           "listings": [x.listing_id for x in listings]})
        return home, [r for r in self.store.foreign_listings() if r["home"] == home]


__all__ = ["Market", "Meter", "Review"]
