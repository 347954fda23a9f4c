"""The gateway's side of data-use grants: it keeps requests and decisions, and records each.

The gateway decides nothing about a grant. A buyer's request is stored
PENDING per holder; only the addressed holder can approve it, by a signature
over the canonical terms that the gateway checks against the holder's
certificate before it stores it; the holder's node enforces its own copy.
Every request and decision is an entry in the ledger.

Who may call what: buyers request and list their own grants; holders list
the grants addressed to them and decide them; operators list all. A buyer
may hold at most MAX_PENDING undecided requests, so requests cannot be used
to fill the gateway's store.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any, Callable

from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from datawharf.grants import GrantTerms, check_request, verify_terms
from datawharf.identity import Gate, peer_certificate
from datawharf.pki import Role
from datawharf.v1 import grants_pb2, grants_pb2_grpc
from gateway.catalog import CatalogEntry
from gateway.servicers import translate_errors
from gateway.store import SqliteStore

MAX_PENDING = 256        # undecided requests one buyer may have open
MAX_LISTED = 1000        # grants one ListGrants returns (newest first)
MAX_REASON = 500

_STATE_TO = {"PENDING": grants_pb2.GRANT_STATE_PENDING, "APPROVED": grants_pb2.GRANT_STATE_APPROVED,
             "REJECTED": grants_pb2.GRANT_STATE_REJECTED, "REVOKED": grants_pb2.GRANT_STATE_REVOKED}
_STATE_FROM = {v: k for k, v in _STATE_TO.items()}


def _grant(row: sqlite3.Row) -> grants_pb2.Grant:
    return grants_pb2.Grant(id=row["id"], buyer=row["buyer"], party=row["party"], state=_STATE_TO[row["state"]],
                            reason=row["reason"], requested_at=row["requested_at"], decided_at=row["decided_at"],
                            terms=row["terms"], signature=row["signature"], certificate=row["certificate"])


class GrantServicer(grants_pb2_grpc.GrantServiceServicer):
    def __init__(self, store: SqliteStore, catalog: Callable[[], dict[str, CatalogEntry]], gate: Gate,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.catalog = catalog
        self.gate = gate
        self.clock = clock

    @property
    def _db(self) -> sqlite3.Connection:
        return self.store._db  # the store's connection: grants share its transactions and its ledger

    @translate_errors
    async def RequestGrant(self, request: grants_pb2.GrantRequest, context: Any) -> grants_pb2.GrantList:
        buyer = self.gate.caller(context, Role.BUYER).name
        now = self.clock()
        stats = check_request(request.dataset, request.purpose, list(request.statistics), request.until,
                              request.max_jobs, request.budget, now=now)
        entry = self.catalog().get(request.dataset)
        if entry is None:
            raise NotFound(f"no holder lists dataset {request.dataset!r}; see `wharf catalog`", argument="dataset")
        parties = list(dict.fromkeys(request.parties)) or list(entry.holders)
        unknown = [p for p in parties if p not in entry.holders]
        if unknown:
            raise NotFound(f"{', '.join(unknown)} do(es) not list {request.dataset!r} (holders: "
                           f"{', '.join(entry.holders)})", argument="parties")
        pending = self._db.execute("SELECT COUNT(*) FROM grants WHERE buyer = ? AND state = 'PENDING'",
                                   (buyer,)).fetchone()[0]
        if pending + len(parties) > MAX_PENDING:
            raise ResourceExhausted(f"{buyer} has {pending} grant requests awaiting holders; at most {MAX_PENDING} "
                                    "may wait at once: wait for decisions")
        made = []
        for party in parties:
            terms = GrantTerms(f"g-{uuid.uuid4().hex[:16]}", buyer, party, request.dataset, request.purpose.strip(),
                               stats, request.until, request.max_jobs, request.budget)
            raw = terms.canonical()

            def insert(db: sqlite3.Connection, t: GrantTerms = terms, raw: bytes = raw) -> None:
                db.execute("INSERT INTO grants (id, buyer, party, dataset, state, terms, requested_at) "
                           "VALUES (?, ?, ?, ?, 'PENDING', ?, ?)", (t.id, t.buyer, t.party, t.dataset, raw, now))

            self.store.record("grant_requested", party=party, detail=terms.id, also=insert,
                              evidence={"grant": terms.id, "buyer": buyer, "dataset": terms.dataset,
                                        "purpose": terms.purpose, "statistics": list(stats), "until": terms.until,
                                        "max_jobs": terms.max_jobs, "budget": terms.budget})
            made.append(terms.id)
        rows = [self._row(g) for g in made]
        return grants_pb2.GrantList(grants=[_grant(r) for r in rows if r is not None])

    def _row(self, grant_id: str) -> sqlite3.Row | None:
        return self._db.execute("SELECT * FROM grants WHERE id = ?", (grant_id,)).fetchone()

    @translate_errors
    async def ListGrants(self, request: grants_pb2.ListGrantsRequest, context: Any) -> grants_pb2.GrantList:
        who = self.gate.caller(context, Role.BUYER, Role.PARTY, Role.OPERATOR)
        where, args = [], []
        if who.role is Role.BUYER:
            where.append("buyer = ?")
            args.append(who.name)
        elif who.role is Role.PARTY:
            where.append("party = ?")
            args.append(who.name)
        if request.state:
            if request.state not in _STATE_FROM:
                raise InvalidArgument("unknown grant state", argument="state")
            where.append("state = ?")
            args.append(_STATE_FROM[request.state])
        sql = "SELECT * FROM grants" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._db.execute(sql + f" ORDER BY requested_at DESC LIMIT {MAX_LISTED}", args).fetchall()
        return grants_pb2.GrantList(grants=[_grant(r) for r in rows])

    @translate_errors
    async def DecideGrant(self, request: grants_pb2.GrantDecision, context: Any) -> grants_pb2.Grant:
        holder = self.gate.caller(context, Role.PARTY)
        row = self._row(request.id)
        if row is None or row["party"] != holder.name:
            # Another holder's grant looks the same as none: ids are not an oracle.
            raise NotFound(f"no grant {request.id!r} is addressed to {holder.name}")
        if len(request.reason) > MAX_REASON:
            raise InvalidArgument(f"a reason is at most {MAX_REASON} characters", argument="reason")
        terms = GrantTerms.parse(bytes(row["terms"]))
        now = self.clock()
        state, action = row["state"], request.action
        A = grants_pb2.GrantDecision
        if action == A.ACTION_APPROVE:
            if state != "PENDING":
                raise FailedPrecondition(f"grant {terms.id} is {state}; only a pending grant can be approved")
            if self.gate.insecure:
                raise FailedPrecondition("approving a grant needs the holder's certificate; this gateway runs "
                                         "--insecure, where nothing can be signed")
            cert = peer_certificate(context)
            verify_terms(cert, terms, request.signature)
            new, sig, pem = "APPROVED", bytes(request.signature), cert
        elif action == A.ACTION_REJECT:
            if state != "PENDING":
                raise FailedPrecondition(f"grant {terms.id} is {state}; only a pending grant can be rejected")
            new, sig, pem = "REJECTED", b"", b""
        elif action == A.ACTION_REVOKE:
            if state != "APPROVED":
                raise FailedPrecondition(f"grant {terms.id} is {state}; only an approved grant can be revoked")
            new, sig, pem = "REVOKED", bytes(row["signature"]), bytes(row["certificate"])
        else:
            raise InvalidArgument("say approve, reject or revoke", argument="action")

        def update(db: sqlite3.Connection) -> None:
            db.execute("UPDATE grants SET state = ?, reason = ?, signature = ?, certificate = ?, decided_at = ? "
                       "WHERE id = ?", (new, request.reason, sig, pem, now, terms.id))

        evidence: dict[str, Any] = {"grant": terms.id, "buyer": terms.buyer, "state": new}
        if new == "APPROVED":
            evidence.update(terms=terms.canonical().decode(), grant_signature=sig.hex(),
                            holder_certificate=pem.decode())
        if request.reason:
            evidence["reason"] = request.reason
        self.store.record(f"grant_{new.lower()}", party=holder.name, detail=terms.id, evidence=evidence, also=update)
        out = self._row(terms.id)
        assert out is not None
        return _grant(out)


__all__ = ["GrantServicer", "MAX_PENDING"]
