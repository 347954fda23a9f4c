"""Two gateway replicas on one PostgreSQL database behind a TCP balancer, five holders, real processes:
jobs land on either replica and reach every holder; a PSI job runs across replicas (the holder's answer
at one, the buyer's rounds and the match at the other); replicas and holders killed at random moments
leave every job, aggregations and small PSI jobs mixed, DONE with the right answer or FAILED naming why,
none hanging, none counted twice."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from buyers.client import Client, JobFailed
from tests.exchange import Exchange, StartExchange
from tests.postgres import Cluster
from wharf.demo import truth

HOLDERS = ("st-mary", "riverside", "northgate", "eastfield", "westmoor")
# (statistic, column, where): single figures and a vector (histogram) over the holders' visits.
JOBS = [("sum", "cost", ""), ("count", "patient_id", "age >= 40"), ("mean", "age", "cost >= 0"),
        ("histogram", "age", "")]
PSI_EVERY = 5  # in the chaos mix, every fifth job is a small PSI job against one holder


@pytest.fixture(scope="module")
def replicated(start_exchange: StartExchange, postgres: Cluster) -> Exchange:
    # One buyer submits well over the default 60 jobs a minute here; the rate limit has its own tests.
    return start_exchange("replicas", store=postgres.database(), replicas=2, lease_s=2.0, parties=HOLDERS,
                          rows=300, gateway_args=("--jobs-per-minute", "0"))


def owners(ex: Exchange) -> dict[str, int]:
    with psycopg.connect(ex.store) as conn:
        return {o: n for o, n in conn.execute("SELECT owner, COUNT(*) FROM jobs GROUP BY owner")}


def psi_ids(ex: Exchange, holder: str, seed: int) -> tuple[list[str], set[str]]:
    """64-256 IDs, about half of them the holder's: (the buyer's list, the true intersection)."""
    rng = random.Random(seed)
    n = rng.randrange(64, 257)
    theirs = rng.sample([r["patient_id"] for r in ex.rows_of([holder])], n // 2)
    ids = theirs + [f"ZZ-{seed}-{k:05d}" for k in range(n - n // 2)]
    rng.shuffle(ids)
    return ids, set(theirs)


def run_psi(ex: Exchange, i: int, holder: str, client: Client | None = None, *,
            prefix: str = "chaos") -> tuple[str, str]:
    """A PSI job against ``holder``: ("done", "") with the intersection checked, or ("failed", reason)."""
    ids, truth = psi_ids(ex, holder, i)
    with client or ex.client() as c:
        try:
            answer = c.psi("visits", "patient_id", ids, party=holder, parallel=False, timeout_s=60,
                           request_id=f"{prefix}-{i}")
        except JobFailed as exc:
            return "failed", exc.view.reason or str(exc)
    assert answer.size == len(truth) and set(answer.matched) == truth, f"PSI job {i} differs"
    return "done", ""


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


def test_a_psi_job_whose_holder_streams_to_the_other_replica_completes(replicated: Exchange) -> None:
    """The buyer talks to one replica (which owns the job and matches it); the holder's stream is held by
    the other, which relays the buyer's set and stores the holder's answer."""
    holder = HOLDERS[1]
    with psycopg.connect(replicated.store) as conn:
        (host,) = conn.execute("SELECT replica FROM parties WHERE name = %s", (holder,)).fetchone()
    other = next(i for i in range(2) if replicated.replica_name(i) != host)
    client = Client(replicated.replica_addresses[other], replicated.identity("acme-insurance"))
    assert run_psi(replicated, 1, holder, client, prefix="across") == ("done", "")
    with psycopg.connect(replicated.store) as conn:
        (owner,) = conn.execute("SELECT owner FROM jobs WHERE request_id = 'across-1'").fetchone()
        (still,) = conn.execute("SELECT replica FROM parties WHERE name = %s", (holder,)).fetchone()
    assert owner == replicated.replica_name(other) and still == host != owner


def test_chaos_killing_replicas_and_holders_leaves_no_job_hanging_or_counted_twice(replicated: Exchange) -> None:
    rng = random.Random(13)
    total, done = 100, threading.Event()
    finished: list[int] = []

    kills: list[str] = []

    def chaos() -> None:
        # Kill one replica or one holder at random moments, and bring it back a little later; eight
        # times at most, since every kill stalls the jobs in flight for a while and this runs in the suite.
        while not done.is_set() and len(kills) < 8:
            done.wait(rng.uniform(2.0, 4.0))
            if done.is_set():
                return
            if rng.random() < 0.5:
                index = rng.randrange(2)
                replicated.kill_replica(index)
                kills.append(replicated.replica_name(index))
                done.wait(rng.uniform(1.0, 2.0))
                replicated.start_replica(index, listen=replicated.replica_addresses[index])
            else:
                holder = rng.choice(HOLDERS)
                replicated.kill_party(holder)
                kills.append(holder)
                done.wait(rng.uniform(1.0, 2.0))
                replicated.start_party(holder, replicated.config(holder))

    def one(i: int) -> tuple[str, str]:
        try:
            if i % PSI_EVERY == PSI_EVERY - 1:  # spread over the holders (each has a PSI quota per buyer)
                return run_psi(replicated, i, HOLDERS[i // PSI_EVERY % len(HOLDERS)])
            return run(replicated, i, *JOBS[i % len(JOBS)])
        finally:
            finished.append(i)

    chaos_thread = threading.Thread(target=chaos, daemon=True)
    started = time.monotonic()
    chaos_thread.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(one, range(total)))
    finally:
        done.set()
        chaos_thread.join(timeout=60)
    took = time.monotonic() - started
    failed = [reason for state, reason in outcomes if state == "failed"]
    assert len(outcomes) == total and len(finished) == total  # none hangs
    assert len(kills) >= 3 and any(k.startswith("gateway") for k in kills), kills  # the chaos did happen
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
    print(f"chaos: {total} jobs in {took:.1f} s, {states.get('DONE', 0)} done, {len(failed)} failed; "
          f"killed {', '.join(kills)}")
