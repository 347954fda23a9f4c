"""Grants at B for what the link offers: B's buyers ask the link, as they ask any holder.

With ``grants = "required"`` in link.toml, a B buyer needs a grant the
link's operator approved (signed with the link's B party certificate,
``wharf link grant approve``) for each task: dataset, statistic, expiry,
job count and privacy spend, checked by the link's node from its own copy
(``parties.grants.GrantBook`` in the link's state directory). A's holders
grant the link itself at A in the ordinary way (`wharf grant request` with
the link's A buyer certificate); the two are independent, and a task runs
only if both allow it.
"""

from __future__ import annotations

from pathlib import Path

from buyers.grants import GrantClient
from datawharf.errors import WharfError
from datawharf.grants import GrantTerms
from datawharf.v1 import grants_pb2
from links.config import LinkConfig
from parties.grants import GrantBook

__all__ = ["approve", "client", "reject", "revoke"]


def client(cfg: LinkConfig) -> GrantClient:
    """A connection to B's gateway as the link (its party certificate)."""
    return GrantClient(cfg.party_at.gateway, cfg.party_credentials())


def _book(cfg: LinkConfig) -> GrantBook:
    return GrantBook(cfg.state_dir or Path(f".wharf-link-{cfg.name}"))


def approve(cfg: LinkConfig, grant_id: str) -> grants_pb2.Grant:
    """Sign the grant addressed to the link and keep the signed terms for its node."""
    with client(cfg) as c:
        decided, terms, signature = c.approve(c.find(grant_id))
    book = _book(cfg)
    try:
        book.approve(terms, signature)
    finally:
        book.close()
    return decided


def reject(cfg: LinkConfig, grant_id: str, reason: str) -> grants_pb2.Grant:
    with client(cfg) as c:
        decided = c.reject(grant_id, reason)
    book = _book(cfg)
    try:
        book.reject(GrantTerms.parse(decided.terms), reason)
    finally:
        book.close()
    return decided


def revoke(cfg: LinkConfig, grant_id: str, reason: str) -> grants_pb2.Grant:
    """Revoke here first (the node refuses the grant's next task whatever B's gateway does), then tell B."""
    book = _book(cfg)
    try:
        known = book.revoke(grant_id, reason)
    finally:
        book.close()
    try:
        with client(cfg) as c:
            return c.revoke(grant_id, reason)
    except WharfError as exc:
        if known:
            raise WharfError(f"revoked here (the link refuses its tasks); B's gateway was not told: "
                             f"{exc.message}") from None
        raise
