"""Listing review: what a holder submits, what reviewers decide, what the catalog may show.

    submit (holder)            → PENDING        (an older PENDING version is SUPERSEDED)
    approve (operator)         PENDING → APPROVED, or AWAITING_AUTHORITY for public data
    approve (authority)        AWAITING_AUTHORITY → APPROVED
    reject (operator|authority) PENDING | AWAITING_AUTHORITY → REJECTED   (the holder may resubmit)
    delist (operator|authority) APPROVED → DELISTED
    (an authority decides on public data only)
    APPROVED of a new version  → the previously APPROVED one is SUPERSEDED

Every submission and decision arrives signed by its author (datawharf.market)
and is recorded in the ledger with that signature, in the same transaction
as the row it changes. With review off every registered dataset counts as
approved, as before the market existed.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from typing import Any, Callable

from datawharf.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from datawharf.market import Action, Classification, ListingState, Terms, check_terms, open_decision, open_listing
from datawharf.pki import Identity, Role, TrustStore, check_name, digest
from datawharf.model import Listing
from datawharf.serde import listing_to_proto
from datawharf.v1 import common_pb2, market_pb2
from gateway.store import SqliteStore

log = logging.getLogger("datawharf.gateway")

# Who may move a listing from which states, per action.
_FROM: dict[Action, tuple[ListingState, ...]] = {
    Action.APPROVE: (ListingState.PENDING, ListingState.AWAITING_AUTHORITY),
    Action.REJECT: (ListingState.PENDING, ListingState.AWAITING_AUTHORITY),
    Action.DELIST: (ListingState.APPROVED,),
}
MAX_SUBMISSIONS_PER_HOUR = 30

_DONE = {Action.APPROVE: "approved", Action.REJECT: "rejected", Action.DELIST: "delisted"}


class Review:
    """The listings of this exchange and their review. ``required`` False: review is off."""

    def __init__(self, store: SqliteStore, trust: TrustStore | None, *, required: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.trust = trust
        self.required = required
        self.clock = clock
        self.on_withdrawn: list[Callable[[str, str, str], None]] = []  # (holder, dataset, why) at a delist
        self._approved: dict[tuple[str, str], sqlite3.Row] = {}
        self._reload()

    def _reload(self) -> None:
        self._approved = {(r["holder"], r["dataset"]): r for r in self.store.listings(state=ListingState.APPROVED)}

    # ------------------------------------------------------------- the catalog
    def admits(self, holder: str, dataset: str, registered: Listing | None = None) -> bool:
        """Whether ``holder``'s ``dataset`` may be in the catalog and receive tasks: its listing is
        approved and, given what the holder's node ``registered``, describes the same columns (an
        approval is of the schema and roles reviewed, not of whatever the node lists later)."""
        if not self.required:
            return True
        row = self._approved.get((holder, dataset))
        return row is not None and (registered is None or _same_columns(registered, _body(row).dataset))

    def approved(self, holder: str, dataset: str) -> tuple[str, Terms] | None:
        """(listing id, terms) of the holder's approved listing of ``dataset``, if any (review on or off)."""
        row = self._approved.get((holder, dataset))
        if row is None:
            return None
        return row["listing_id"], check_terms(_body(row))

    def standing(self, holder: str, dataset: str, registered: Listing | None = None) -> str:
        """Why a holder's dataset is not in the catalog, in words: its newest listing's state and reason."""
        rows = [r for r in self.store.listings(holder=holder) if r["dataset"] == dataset]
        if not rows:
            return f"{holder} has submitted no listing of {dataset!r}"
        approved = self._approved.get((holder, dataset))
        if approved is not None and not self.admits(holder, dataset, registered):
            return (f"{holder}'s node lists {dataset!r} with other columns or roles than its approved listing "
                    f"{approved['listing_id']}; the holder resubmits the listing for review or restores them")
        newest = rows[-1]
        decisions = self.store.listing_decisions(newest["listing_id"])
        why = f" ({decisions[-1]['action']}: {decisions[-1]['text']})" if decisions and decisions[-1]["text"] else ""
        return f"{holder}'s listing {newest['listing_id']} of {dataset!r} is {newest['state']}{why}"

    def check_job(self, dataset: str, named: list[str], registered: dict[str, Listing]) -> None:
        """Refuse a job on a dataset none of whose holders (or not every named one) is approved,
        naming each listing's state. ``registered``: what each holder's node lists as ``dataset``."""
        if not self.required:
            return
        blocked = [h for h in (named or list(registered)) if not self.admits(h, dataset, registered.get(h))]
        if named and blocked or not named and registered and len(blocked) == len(registered):
            raise FailedPrecondition(
                f"dataset {dataset!r} is not approved for sale: "
                + "; ".join(self.standing(h, dataset, registered.get(h)) for h in sorted(blocked))
                + ". Only listings the exchange approved can be computed on", argument="dataset")

    # ---------------------------------------------------------------- holders
    def submit(self, caller: Identity, signed: market_pb2.Signed) -> sqlite3.Row:
        who, body = open_listing(signed, self._trust())
        if who.fingerprint != caller.fingerprint:
            raise PermissionDenied(f"the listing is signed by {who.name} but sent by {caller.name}; "
                                   "a holder submits only its own listings")
        terms = check_terms(body)
        dataset = check_name(body.dataset.name, "dataset")
        if not body.dataset.columns:
            raise InvalidArgument("the listing describes no columns; submit it from the holder's TOML "
                                  "(`wharf listing submit --config party.toml`)", argument="dataset")
        holder = who.name
        now = self.clock()
        recent = sum(1 for r in self.store.listings(holder=holder) if r["submitted_at"] > now - 3600)
        if recent >= MAX_SUBMISSIONS_PER_HOUR:
            # Each submission is a row and a ledger entry kept for good: a holder gets a bounded share.
            raise ResourceExhausted(f"{holder} submitted {recent} listings in the last hour, the most allowed; "
                                    "wait, or fix the listing before submitting again")
        version = self.store.listing_version(holder, dataset) + 1
        listing_id = f"lst-{uuid.uuid4().hex[:12]}"
        older = [r["listing_id"] for r in self.store.listings(holder=holder, state=ListingState.PENDING)
                 if r["dataset"] == dataset]
        older += [r["listing_id"] for r in self.store.listings(holder=holder, state=ListingState.AWAITING_AUTHORITY)
                  if r["dataset"] == dataset]

        def rows(seq: int) -> list[tuple[str, tuple[Any, ...]]]:
            out: list[tuple[str, tuple[Any, ...]]] = [(
                "INSERT INTO listings (listing_id, holder, dataset, version, state, submission, submitted_at, "
                "ledger_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (listing_id, holder, dataset, version, ListingState.PENDING, signed.SerializeToString(), now, seq))]
            out += [("UPDATE listings SET state = ?, decided_at = ? WHERE listing_id = ?",
                     (ListingState.SUPERSEDED, now, old)) for old in older]
            return out

        self.store.record_linked(
            "listing_submitted", rows, party=holder,
            detail=f"{dataset} v{version}: {terms.title}; {terms.price} {terms.currency} per job, {terms.pricing}",
            evidence={"listing_id": listing_id, "dataset": dataset, "version": version,
                      "listing_digest": digest(signed.body).hex(), "holder_signature": signed.signature.hex(),
                      "holder_certificate": signed.certificate.decode(), "superseded": older})
        log.info("listing %s: %s submitted %s v%d", listing_id, holder, dataset, version)
        row = self.store.listing(listing_id)
        assert row is not None
        return row

    # -------------------------------------------------------------- reviewers
    def decide(self, caller: Identity, signed: market_pb2.Signed) -> sqlite3.Row:
        who, body = open_decision(signed, self._trust())
        if who.fingerprint != caller.fingerprint:
            raise PermissionDenied(f"the decision is signed by {who.name} but sent by {caller.name}; "
                                   "a reviewer sends only its own decisions")
        row = self.store.listing(body.listing_id)
        if row is None:
            raise NotFound(f"no listing {body.listing_id!r}; `wharf listing list` shows them")
        if body.listing_digest != digest(_signed(row).body):
            raise FailedPrecondition(f"the decision is about another text of listing {body.listing_id}; "
                                     "list it again and decide on what it says now")
        try:
            action = Action(body.action)
        except ValueError:
            raise InvalidArgument(f"action {body.action!r} is not approve, reject or delist") from None
        text = body.text.strip()
        if action is not Action.APPROVE and not text:
            raise InvalidArgument(f"a {action.value} needs a reason the holder can act on (--reason)",
                                  argument="reason")
        state = ListingState(row["state"])
        if who.role is Role.AUTHORITY and check_terms(_body(row)).classification != Classification.PUBLIC:
            raise PermissionDenied(f"listing {row['listing_id']} is not public data: the exchange's operators "
                                   "review it, an authority reviews public data only")
        new = self._next(action, state, who.role, row)
        now = self.clock()
        holder, dataset = row["holder"], row["dataset"]
        superseded = [r["listing_id"] for r in self.store.listings(holder=holder, state=ListingState.APPROVED)
                      if r["dataset"] == dataset and r["listing_id"] != row["listing_id"]] \
            if new is ListingState.APPROVED else []

        def rows(seq: int) -> list[tuple[str, tuple[Any, ...]]]:
            out: list[tuple[str, tuple[Any, ...]]] = [
                ("INSERT INTO listing_decisions (listing_id, action, reviewer, role, text, at, signed, ledger_seq) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (row["listing_id"], action, who.name, who.role.value, text, now, signed.SerializeToString(), seq)),
                ("UPDATE listings SET state = ?, decided_at = ? WHERE listing_id = ?", (new, now, row["listing_id"]))]
            out += [("UPDATE listings SET state = ?, decided_at = ? WHERE listing_id = ?",
                     (ListingState.SUPERSEDED, now, old)) for old in superseded]
            return out

        self.store.record_linked(
            f"listing_{_DONE[action]}", rows, party=holder,
            detail=f"{row['listing_id']} ({dataset} v{row['version']}): {state} -> {new} by {who.role.value} "
                   f"{who.name}" + (f": {text}" if text else ""),
            evidence={"listing_id": row["listing_id"], "action": action.value, "state": new, "reviewer": who.name,
                      "reviewer_role": who.role.value, "text": text, "decision_digest": digest(signed.body).hex(),
                      "reviewer_signature": signed.signature.hex(), "reviewer_certificate": signed.certificate.decode(),
                      "superseded": superseded})
        self._reload()
        log.info("listing %s: %s by %s %s", row["listing_id"], new, who.role.value, who.name)
        if new is ListingState.DELISTED and not self.admits(holder, dataset):
            for hook in self.on_withdrawn:
                hook(holder, dataset, f"the exchange delisted {holder}'s {dataset}: {text}")
        updated = self.store.listing(row["listing_id"])
        assert updated is not None
        return updated

    def _next(self, action: Action, state: ListingState, role: Role, row: sqlite3.Row) -> ListingState:
        if state not in _FROM[action]:
            allowed = " or ".join(s.value for s in _FROM[action])
            raise FailedPrecondition(f"listing {row['listing_id']} is {state}; only a listing that is {allowed} "
                                     f"can be {_DONE[action]}")
        if action is not Action.APPROVE:
            return ListingState.REJECTED if action is Action.REJECT else ListingState.DELISTED
        public = check_terms(_body(row)).classification == Classification.PUBLIC
        if role is Role.AUTHORITY:
            if state is not ListingState.AWAITING_AUTHORITY:
                raise FailedPrecondition(f"listing {row['listing_id']} is {state}: an authority approves public "
                                         "data after the operator has")
            return ListingState.APPROVED
        if state is ListingState.AWAITING_AUTHORITY:
            raise FailedPrecondition(f"listing {row['listing_id']} is public data the operator already approved; "
                                     "it awaits an authority's approval (`wharf ca issue --role authority`)")
        return ListingState.AWAITING_AUTHORITY if public else ListingState.APPROVED

    def _trust(self) -> TrustStore:
        if self.trust is None:
            raise FailedPrecondition("the market needs certificates: listings and decisions are signed, and this "
                                     "gateway runs --insecure")
        return self.trust


def _same_columns(registered: Listing, reviewed: common_pb2.DatasetListing) -> bool:
    mine = [c.SerializeToString(deterministic=True) for c in listing_to_proto(registered).columns]
    return mine == [c.SerializeToString(deterministic=True) for c in reviewed.columns]


def _signed(row: sqlite3.Row) -> market_pb2.Signed:
    return market_pb2.Signed.FromString(row["submission"])


def _body(row: sqlite3.Row) -> market_pb2.ListingBody:
    return market_pb2.ListingBody.FromString(_signed(row).body)


def listing_body(row: sqlite3.Row) -> market_pb2.ListingBody:
    """What the holder listed, from a stored listing row."""
    return _body(row)


__all__ = ["Review", "listing_body"]
