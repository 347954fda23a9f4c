"""The holder's per-buyer budgets: spent to the limit, renewed per period, kept across restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from parties.budget import BudgetBook, Limit

DAY = 86400.0
LIMIT = Limit("rho", 1.0, 30 * DAY)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_spending_to_the_limit_then_refused_then_renewed(tmp_path: Path) -> None:
    clock = Clock(1000 * DAY)
    book = BudgetBook(tmp_path, clock=clock)
    for i in range(4):
        assert book.charge("acme", "visits", LIMIT, 0.25, f"j{i}").charged
    refused = book.charge("acme", "visits", LIMIT, 0.01, "j5")
    assert not refused.charged and refused.balance.remaining == 0.0
    # Nothing partial was written, and other buyers and datasets have their own budgets.
    assert book.balance("acme", "visits", LIMIT).spent == pytest.approx(1.0)
    assert book.charge("other", "visits", LIMIT, 0.5, "k").charged
    assert book.charge("acme", "wards", LIMIT, 0.5, "k").charged
    clock.t = refused.balance.renews_at
    assert book.charge("acme", "visits", LIMIT, 1.0, "j6").charged


def test_a_restart_keeps_what_was_spent(tmp_path: Path) -> None:
    clock = Clock(5 * DAY)
    BudgetBook(tmp_path, clock=clock).charge("acme", "visits", LIMIT, 0.9, "j1")
    again = BudgetBook(tmp_path, clock=clock)
    assert not again.charge("acme", "visits", LIMIT, 0.2, "j2").charged
    assert (tmp_path / "budget.sqlite3").stat().st_mode & 0o777 == 0o600


def test_racing_charges_cannot_both_take_the_last_of_a_budget(tmp_path: Path) -> None:
    books = [BudgetBook(tmp_path) for _ in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def take(b: BudgetBook) -> None:
        barrier.wait()
        results.append(b.charge("acme", "visits", Limit("rho", 0.5, DAY), 0.2, "j").charged)

    threads = [threading.Thread(target=take, args=(b,)) for b in books]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 6 + [True] * 2


def test_bad_amounts_are_refused(tmp_path: Path) -> None:
    book = BudgetBook(tmp_path)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            book.charge("acme", "visits", LIMIT, bad, "j")


def test_threads_sharing_one_book_cannot_overspend_it(tmp_path: Path) -> None:
    """The node's worker threads share one book (one connection): charges must not interleave."""
    book = BudgetBook(tmp_path)
    for trial in range(30):
        barrier = threading.Barrier(6)
        limit = Limit("rho", 1.0, DAY)
        errors: list[BaseException] = []

        def take(i: int) -> None:
            barrier.wait()
            try:
                book.charge(f"b{trial}", "visits", limit, 0.6, f"j{i}")
            except BaseException as exc:  # noqa: BLE001 - any error is the failure this test looks for
                errors.append(exc)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and book.balance(f"b{trial}", "visits", limit).spent == pytest.approx(0.6)
