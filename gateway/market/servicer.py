"""The MarketService: thin, like the other servicers. Who may call what:

    SubmitListing   a holder (party certificate), for itself: the body names it and it signed it
    ListListings    a holder sees its own listings; operators and authorities every one; anyone
                    the foreign (imported) listings, which are offers another exchange approved
    DecideListing   operators and authorities, with a decision they signed
    ImportBundle    operators
    GetStatement    a holder its own, a buyer its own, an operator anyone's

Buyers learn nothing here but their own statement: what holders asked and
how reviewers decided is between them and the exchange, and the catalog
shows what is approved.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, AsyncIterator, Callable

from datawharf.errors import InvalidArgument, PermissionDenied
from datawharf.identity import Gate
from datawharf.market import ListingState
from datawharf.pki import Role
from datawharf.v1 import market_pb2, market_pb2_grpc
from gateway.market import Market
from gateway.market.bundles import signed_from
from gateway.market.statements import parts
from gateway.servicers import translate_errors

REVIEWERS = (Role.OPERATOR, Role.AUTHORITY)
# A listing with its decisions is a few KiB (schema, certificates): 500 stay under 2 MiB.
DEFAULT_PAGE, MAX_PAGE = 200, 500


def listing_to_proto(store: Any, row: sqlite3.Row) -> market_pb2.MarketListing:
    return market_pb2.MarketListing(
        listing_id=row["listing_id"], holder=row["holder"], dataset=row["dataset"], version=row["version"],
        state=row["state"], submission=market_pb2.Signed.FromString(row["submission"]),
        submitted_at=row["submitted_at"], ledger_seq=row["ledger_seq"],
        decisions=[market_pb2.Decision(action=d["action"], reviewer=d["reviewer"], role=d["role"], text=d["text"],
                                       at=d["at"], ledger_seq=d["ledger_seq"],
                                       signed=market_pb2.Signed.FromString(d["signed"]))
                   for d in store.listing_decisions(row["listing_id"])])


def foreign_to_proto(row: sqlite3.Row, local: Callable[[str], bool] = lambda dataset: False
                     ) -> market_pb2.MarketListing:
    """A listing imported from ``row["home"]``; ``local(dataset)`` says whether this catalog lists the
    dataset (through a holder here, or a link to that exchange), i.e. whether a job can reach it."""
    entry = json.loads(row["entry"])
    runnable = local(row["dataset"])
    availability = (f"runnable here: {row['dataset']!r} is in this exchange's catalog" if runnable else
                    f"not runnable here: no holder or link in this exchange's catalog lists {row['dataset']!r}; "
                    f"it runs at its home exchange ({row['home']}) until the exchanges are linked")
    return market_pb2.MarketListing(
        runnable_here=runnable, availability=availability,
        listing_id=row["listing_id"], holder=row["holder"], dataset=row["dataset"],
        version=int(entry.get("version") or 0), state=ListingState.APPROVED, home_exchange=row["home"],
        submission=signed_from(entry["submission"]), submitted_at=row["imported_at"],
        decisions=[market_pb2.Decision(signed=signed_from(d)) for d in entry.get("decisions") or []])


class MarketServicer(market_pb2_grpc.MarketServiceServicer):
    def __init__(self, market: Market, gate: Gate, *, catalog: Callable[[], dict[str, Any]] = dict) -> None:
        self.market = market
        self.gate = gate
        self.catalog = catalog  # this exchange's catalog by dataset name: what a job here can reach

    def _local(self) -> Callable[[str], bool]:
        names = set(self.catalog())
        return lambda dataset: dataset in names

    @translate_errors
    async def SubmitListing(self, request: market_pb2.Signed, context: Any) -> market_pb2.MarketListing:
        caller = self.gate.caller(context, Role.PARTY)
        return listing_to_proto(self.market.store, self.market.review.submit(caller, request))

    @translate_errors
    async def ListListings(self, request: market_pb2.ListListingsRequest, context: Any
                           ) -> market_pb2.ListListingsResponse:
        caller = self.gate.caller(context, Role.PARTY, Role.BUYER, *REVIEWERS)
        if request.state and request.state not in ListingState.__members__:
            raise InvalidArgument(f"state {request.state!r} is not one of {', '.join(ListingState)}", argument="state")
        if request.foreign:
            # Another exchange's approved offers are public: buyers browse them beside the catalog.
            foreign = self.market.store.foreign_listings()
            return market_pb2.ListListingsResponse(
                listings=[foreign_to_proto(r, self._local()) for r in foreign], total=len(foreign))
        if caller.role is Role.BUYER:
            raise PermissionDenied("listings under review are between holders and the exchange; buyers see "
                                   "approved ones in the catalog (`wharf catalog`) and foreign ones with --foreign")
        holder = caller.name if caller.role is Role.PARTY else ""
        limit = min(request.limit or DEFAULT_PAGE, MAX_PAGE)  # a page stays far below the message limit
        store = self.market.store
        rows = store.listings(state=request.state, holder=holder, listing_id=request.listing_id, limit=limit,
                              offset=request.offset)
        return market_pb2.ListListingsResponse(
            listings=[listing_to_proto(store, r) for r in rows],
            total=store.count_listings(state=request.state, holder=holder, listing_id=request.listing_id))

    @translate_errors
    async def DecideListing(self, request: market_pb2.Signed, context: Any) -> market_pb2.MarketListing:
        caller = self.gate.caller(context, *REVIEWERS)
        return listing_to_proto(self.market.store, self.market.review.decide(caller, request))

    @translate_errors
    async def ImportBundle(self, request: market_pb2.ImportBundleRequest, context: Any
                           ) -> market_pb2.ImportBundleResponse:
        caller = self.gate.caller(context, Role.OPERATOR)
        home, rows = self.market.import_bundle(request.bundle, request.ca, by=caller.name)
        local = self._local()
        return market_pb2.ImportBundleResponse(home_exchange=home, listings=[foreign_to_proto(r, local) for r in rows])

    @translate_errors
    async def GetStatement(self, request: market_pb2.StatementRequest, context: Any
                           ) -> AsyncIterator[market_pb2.Statement]:
        caller = self.gate.caller(context, Role.PARTY, Role.BUYER, Role.OPERATOR)
        if caller.role is Role.PARTY and (request.buyer or request.party != caller.name) or \
                caller.role is Role.BUYER and (request.party or request.buyer != caller.name):
            raise PermissionDenied(f"{caller.name} may read only its own statement "
                                   f"(--{'party' if caller.role is Role.PARTY else 'buyer'} {caller.name})")
        for part in parts(self.market.statement(party=request.party, buyer=request.buyer, month=request.month)):
            yield part


__all__ = ["MarketServicer", "foreign_to_proto", "listing_to_proto"]
