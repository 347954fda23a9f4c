"""Two gateway replicas on one PostgreSQL database behind a TCP balancer, five holders, real processes:
jobs land on either replica and reach every holder; replicas and holders killed at random moments
leave every job DONE with the right answer or FAILED naming why, none hanging, none counted twice."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from buyers.client import JobFailed
from datawharf.errors import WharfError
from tests.exchange import Exchange, StartExchange
from tests.postgres import Cluster
from wharf.demo import truth

HOLDERS = ("st-mary", "riverside", "northgate", "eastfield", "westmoor")
# (statistic, column, where): single figures and a vector (histogram) over the holders' visits.
JOBS = [("sum", "cost", ""), ("count", "patient_id", "age >= 40"), ("mean", "age", "cost >= 0"),
        ("histogram", "age", "")]


@pytest.fixture(scope="module")
def replicated(start_exchange: StartExchange, postgres: Cluster) -> Exchange:
    return start_exchange("replicas", store=postgres.database(), replicas=2, lease_s=2.0, parties=HOLDERS,
                          rows=300)


def owners(ex: Exchange) -> dict[str, int]:
    with psycopg.connect(ex.store) as conn:
        return {o: n for o, n in conn.execute("SELECT owner, COUNT(*) FROM jobs GROUP BY owner")}


def run(ex: Exchange, i: int, stat: str, column: str, where: str, *, prefix: str = "chaos") -> tuple[str, str]:
    """("done", "") with the answer checked against the plaintext, or ("failed", reason)."""
    bins = "0,30,60,120" if stat == "histogram" else None
    with ex.client() as c:
        try:
            job = c.submit("visits", column, stat, where=where or None, bins=bins, timeout_s=30, backend="bfv",
                           request_id=f"{prefix}-{i}")
            answer = c.result(job, timeout_s=120)
        except JobFailed as exc:
            return "failed", exc.view.reason or str(exc)
    if stat == "histogram":
        rows = ex.rows_of(answer.contributors)
        counts = [sum(1 for r in rows if lo <= int(r["age"]) < hi) for lo, hi in ((0, 30), (30, 60), (60, 120))]
        assert [int(g.values[0]) for g in answer.groups] == counts, f"job {i}: histogram differs"
    else:
        assert answer.exact == truth(ex.rows_of(answer.contributors), column, stat, where), f"job {i} differs"
    return "done", ""


def test_jobs_through_the_balancer_land_on_both_replicas_and_reach_every_holder(replicated: Exchange) -> None:
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda i: run(replicated, i, *JOBS[i % len(JOBS)], prefix="spread"), range(8)))
    assert outcomes == [("done", "")] * 8
    assert set(owners(replicated)) == {"gateway", "gateway-1"}  # the balancer spread the submissions


def test_chaos_killing_replicas_and_holders_leaves_no_job_hanging_or_counted_twice(replicated: Exchange) -> None:
    rng = random.Random(13)
    total, done = 100, threading.Event()
    finished: list[int] = []

    def chaos() -> None:
        # Kill one replica or one holder at random moments, and bring it back a little later.
        while not done.is_set():
            done.wait(rng.uniform(2.0, 5.0))
            if done.is_set():
                return
            if rng.random() < 0.5:
                index = rng.randrange(2)
                replicated.kill_replica(index)
                done.wait(rng.uniform(1.0, 3.0))
                replicated.start_replica(index, listen=replicated.replica_addresses[index])
            else:
                holder = rng.choice(HOLDERS)
                replicated.kill_party(holder)
                done.wait(rng.uniform(1.0, 3.0))
                replicated.start_party(holder, replicated.config(holder))

    def one(i: int) -> tuple[str, str]:
        try:
            return run(replicated, i, *JOBS[i % len(JOBS)])
        finally:
            finished.append(i)

    chaos_thread = threading.Thread(target=chaos, daemon=True)
    started = time.monotonic()
    chaos_thread.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one, range(total)))
    finally:
        done.set()
        chaos_thread.join(timeout=60)
    took = time.monotonic() - started
    failed = [reason for state, reason in outcomes if state == "failed"]
    assert len(outcomes) == total and len(finished) == total  # none hangs
    # A failure names why: a holder that did not answer in time, by name, or a shortfall of holders.
    for reason in failed:
        assert any(h in reason for h in HOLDERS) or "holder" in reason, reason
    assert len(failed) <= total // 4, failed
    # Every job is final in the store, with one job_done entry at most (nothing finished twice).
    with psycopg.connect(replicated.store) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM jobs WHERE request_id LIKE 'chaos-%%' "
                                   "GROUP BY state").fetchall())
        twice = conn.execute("SELECT job_id FROM events WHERE kind = 'job_done' GROUP BY job_id "
                             "HAVING COUNT(*) > 1").fetchall()
    assert set(states) <= {"DONE", "FAILED"} and sum(states.values()) == total, states
    assert twice == []
    print(f"chaos: {total} jobs in {took:.1f} s, {states.get('DONE', 0)} done, {len(failed)} failed")
