"""A holder's own copy of the grants it signed, and the check its node applies to each task.

``wharf grant approve`` signs a grant's terms, sends the signature to the
gateway and keeps the signed terms here (``grants.sqlite3`` under the node's
state directory, 0600); ``wharf grant revoke`` marks it revoked here first,
so a revocation takes effect on the next task whatever the gateway does.
The node reads this book for every task of a dataset whose policy says
``grants = "required"``: the buyer needs an approved, unrevoked, unexpired
grant for the dataset that names the task's statistic, with jobs (and
privacy budget, if the grant caps it) left. Jobs and spend under a grant are
charged to the holder's BudgetBook, so they survive restarts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datawharf.errors import InvalidArgument
from datawharf.grants import GrantTerms
from parties.budget import BudgetBook, Limit

FILE = "grants.sqlite3"
_FOREVER = 1e15  # one budget window for the whole life of a grant

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    buyer TEXT NOT NULL,
    dataset TEXT NOT NULL,
    terms BLOB NOT NULL,
    signature BLOB NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class GrantCheck:
    allowed: bool
    reason: str = ""
    code: str = ""
    grant: GrantTerms | None = None


class GrantBook:
    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / FILE
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        # The node's worker threads share this connection, and a check charges two limits in turn.
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def approve(self, terms: GrantTerms, signature: bytes) -> None:
        """Keep the signed terms; a grant revoked or rejected here is never approved again (a new request is)."""
        if self.state(terms.id) in ("REVOKED", "REJECTED"):
            raise InvalidArgument(f"grant {terms.id} was {self.state(terms.id).lower()} here; "  # type: ignore[union-attr]
                                  "the buyer must ask again")
        self._db.execute("INSERT OR REPLACE INTO grants (id, buyer, dataset, terms, signature, state, at) "
                         "VALUES (?, ?, ?, ?, ?, 'APPROVED', ?)",
                         (terms.id, terms.buyer, terms.dataset, terms.canonical(), signature, self.clock()))

    def reject(self, terms: GrantTerms, reason: str) -> None:
        """Keep a rejection too, so the node's refusal can say so rather than "no grant"."""
        self._db.execute("INSERT OR REPLACE INTO grants (id, buyer, dataset, terms, signature, state, reason, at) "
                         "VALUES (?, ?, ?, ?, x'', 'REJECTED', ?, ?)",
                         (terms.id, terms.buyer, terms.dataset, terms.canonical(), reason, self.clock()))

    def revoke(self, grant_id: str, reason: str = "") -> bool:
        """Mark a grant revoked here; False if this holder never approved it."""
        cur = self._db.execute("UPDATE grants SET state = 'REVOKED', reason = ?, at = ? WHERE id = ?",
                               (reason, self.clock(), grant_id))
        return cur.rowcount > 0

    def state(self, grant_id: str) -> str | None:
        row = self._db.execute("SELECT state FROM grants WHERE id = ?", (grant_id,)).fetchone()
        return None if row is None else str(row["state"])

    def grants(self, buyer: str, dataset: str) -> list[tuple[GrantTerms, str]]:
        rows = self._db.execute("SELECT terms, state FROM grants WHERE buyer = ? AND dataset = ? ORDER BY at",
                                (buyer, dataset)).fetchall()
        return [(GrantTerms.parse(bytes(r["terms"])), str(r["state"])) for r in rows]

    def check(self, buyer: str, dataset: str, statistic: str, rho: float, job_id: str,
              budget: BudgetBook) -> GrantCheck:
        """Find a grant that allows this task and charge one job (and ``rho``) to it; or say which rule failed."""
        with self._lock:
            return self._check(buyer, dataset, statistic, rho, job_id, budget)

    def _check(self, buyer: str, dataset: str, statistic: str, rho: float, job_id: str,
               budget: BudgetBook) -> GrantCheck:
        now = self.clock()
        held = self.grants(buyer, dataset)
        if not held:
            return GrantCheck(False, f"{dataset!r} needs a grant and {buyer!r} holds none from this holder; "
                                     "ask with `wharf grant request`", "grant_missing")
        why = ""
        for terms, state in reversed(held):  # the newest grant first
            if state != "APPROVED":
                why = why or f"grant {terms.id} is {state.lower()}"
                continue
            if now >= terms.until:
                why = why or f"grant {terms.id} expired on {time.strftime('%Y-%m-%d', time.gmtime(terms.until))}"
                continue
            if statistic not in terms.statistics:
                why = why or (f"grant {terms.id} allows {', '.join(terms.statistics)}, not {statistic}")
                continue
            jobs = Limit(f"grant_jobs:{terms.id}", terms.max_jobs, _FOREVER)
            if budget.balance(buyer, dataset, jobs).remaining < 1:
                why = why or f"grant {terms.id} has used all {terms.max_jobs} of its jobs"
                continue
            if terms.budget > 0:
                spend = Limit(f"grant_rho:{terms.id}", terms.budget, _FOREVER)
                if not budget.charge(buyer, dataset, spend, rho, job_id).charged:
                    why = why or f"grant {terms.id} has less than rho={rho:g} of its budget {terms.budget:g} left"
                    continue
            if not budget.charge(buyer, dataset, jobs, 1.0, job_id).charged:
                why = why or f"grant {terms.id} has used all {terms.max_jobs} of its jobs"
                continue
            return GrantCheck(True, grant=terms)
        return GrantCheck(False, f"no grant allows this task: {why}", "grant")


__all__ = ["GrantBook", "GrantCheck"]
