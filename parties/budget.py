"""A holder's per-buyer budgets, kept in its own state so a restart forgets nothing.

One SQLite file (``budget.sqlite3``, 0600) under the node's state directory
records every charge: buyer, dataset, resource, job, amount, time. A budget
is a limit per buyer, dataset and resource over a renewal period; periods
are fixed windows counted from the Unix epoch, so the budget renews for
everyone at the same instant and a restart cannot shift it. Resources:

    rho        privacy loss (zCDP ρ) of released figures
    psi_jobs   PSI jobs answered
    psi_ids    IDs a buyer sent to PSI jobs

A charge is checked and written in one transaction, so two tasks racing
for the last of a budget cannot both pass.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

FILE = "budget.sqlite3"
# Floating-point sums of ρ: a spend equal to what remains must pass.
_SLACK = 1e-9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY,
    buyer TEXT NOT NULL,
    dataset TEXT NOT NULL,
    resource TEXT NOT NULL,
    job_id TEXT NOT NULL,
    amount REAL NOT NULL,
    period INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_key ON charges (buyer, dataset, resource, period);
"""


@dataclass(frozen=True)
class Limit:
    resource: str
    amount: float
    period_s: float

    def period(self, at: float) -> int:
        return int(at // self.period_s)

    def renews_at(self, at: float) -> float:
        return (self.period(at) + 1) * self.period_s


@dataclass(frozen=True)
class Balance:
    buyer: str
    dataset: str
    resource: str
    limit: float
    spent: float
    renews_at: float

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.spent)


@dataclass(frozen=True)
class Charge:
    """The outcome of asking for ``amount``: charged, or refused with the balance as it stands."""

    charged: bool
    balance: Balance


class BudgetBook:
    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / FILE
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.executescript(_SCHEMA)
        # One connection serves the node's worker threads: a transaction on it belongs to whoever
        # began it, so every use of the connection holds this lock (other processes: SQLite's own).
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def _spent(self, buyer: str, dataset: str, limit: Limit, period: int) -> float:
        row = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM charges WHERE buyer=? AND dataset=? AND resource=? AND period=?",
            (buyer, dataset, limit.resource, period)).fetchone()
        return float(row[0])

    def balance(self, buyer: str, dataset: str, limit: Limit) -> Balance:
        now = self.clock()
        with self._lock:
            spent = self._spent(buyer, dataset, limit, limit.period(now))
        return Balance(buyer, dataset, limit.resource, limit.amount, spent, limit.renews_at(now))

    def charge(self, buyer: str, dataset: str, limit: Limit, amount: float, job_id: str) -> Charge:
        """Charge ``amount`` if it fits what remains of this period's budget; never charge part of it."""
        if not (amount >= 0 and math.isfinite(amount)):
            raise ValueError(f"a charge must be a finite non-negative amount, got {amount}")
        now = self.clock()
        period = limit.period(now)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                spent = self._spent(buyer, dataset, limit, period)
                fits = spent + amount <= limit.amount + _SLACK
                if fits:
                    self._db.execute(
                        "INSERT INTO charges (buyer, dataset, resource, job_id, amount, period, at) "
                        "VALUES (?,?,?,?,?,?,?)", (buyer, dataset, limit.resource, job_id, amount, period, now))
                    spent += amount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Charge(fits, Balance(buyer, dataset, limit.resource, limit.amount, spent, limit.renews_at(now)))

    def charges(self, buyer: str | None = None) -> list[tuple[str, str, str, str, float, float]]:
        """Every charge (buyer, dataset, resource, job, amount, at), oldest first."""
        q = "SELECT buyer, dataset, resource, job_id, amount, at FROM charges"
        args: tuple[str, ...] = ()
        if buyer is not None:
            q += " WHERE buyer = ?"
            args = (buyer,)
        with self._lock:
            return [tuple(r) for r in self._db.execute(q + " ORDER BY id", args)]  # type: ignore[misc]

    def buyers(self) -> list[tuple[str, str]]:
        """(buyer, dataset) pairs that have ever been charged."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(  # type: ignore[misc]
                "SELECT DISTINCT buyer, dataset FROM charges ORDER BY buyer, dataset")]


__all__ = ["Balance", "BudgetBook", "Charge", "Limit"]
