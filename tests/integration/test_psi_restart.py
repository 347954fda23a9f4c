"""PSI jobs outlive a gateway killed mid-job (SIGKILL) and restarted on the same address: the job resumes
from its row and spool, the holder's task is resent when it reconnects, the buyer's client carries on
(its watch reconnects, a broken stage transfer starts again), and the answer is the plaintext truth."""

from __future__ import annotations

import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction
from typing import Callable

import pytest

from gateway.store import SQLITE_FILE
from tests.exchange import Exchange, StartExchange

HOLDER = "st-mary"


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("psi-restart", parties=(HOLDER,), rows=400)


def buyer_ids(ex: Exchange, seed: int, others: int) -> tuple[list[str], set[str]]:
    """IDs half of which the holder has not (``others`` of them: enough work that the holder takes a while)."""
    rng = random.Random(seed)
    picked = rng.sample([r["patient_id"] for r in ex.rows_of([HOLDER])], 100)
    ids = picked + [f"ZZ-{seed}-{i:06d}" for i in range(others)]
    rng.shuffle(ids)
    return ids, set(picked)


def job_state(ex: Exchange, request_id: str) -> tuple[str, str]:
    """(job state, its task's state) as the gateway's store has them; ("", "") before the job exists."""
    try:
        with sqlite3.connect(f"file:{ex.gateway_dir / SQLITE_FILE}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT j.state, t.state FROM jobs j JOIN tasks t ON t.job_id = j.job_id "
                             "WHERE j.request_id = ?", (request_id,)).fetchone()
    except sqlite3.OperationalError:
        return "", ""
    return (row[0], row[1]) if row else ("", "")


def kill_when(ex: Exchange, request_id: str, ready: Callable[[str, str], bool], timeout_s: float = 120) -> str:
    """SIGKILL the gateway once the job's (state, task state) is ``ready``, and start it again on the same
    address; the job's state when it was killed."""
    deadline = time.monotonic() + timeout_s
    while not ready(*job_state(ex, request_id)):
        assert time.monotonic() < deadline, f"job {request_id} never reached the moment to kill the gateway"
        time.sleep(0.01)
    ex.procs.kill("gateway")
    state = job_state(ex, request_id)[0]
    ex.start_gateway(listen=ex.address)
    return state


def test_a_psi_job_resumes_when_the_gateway_dies_while_the_holder_works(exchange: Exchange) -> None:
    ids, truth = buyer_ids(exchange, seed=1, others=4000)
    with exchange.client() as c, ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        answer = pool.submit(c.psi, "visits", "patient_id", ids, party=HOLDER, parallel=False,
                             request_id="restart-psi")
        # While the holder works (or, should the poll miss that, just after it answered).
        killed = kill_when(exchange, "restart-psi",
                           lambda job, task: job in ("DISPATCHED", "COLLECTING") or task == "CONTRIBUTED")
        ans = answer.result(timeout=240)
    print(f"psi: gateway killed in {killed}; the job ended after {time.monotonic() - started:.1f} s")
    assert ans.size == len(truth) and set(ans.matched) == truth
    with exchange.client() as c:
        assert c.status(ans.job_id).state == "DONE"


def test_a_psi_sum_job_resumes_when_the_gateway_dies_in_the_buyers_second_round(exchange: Exchange) -> None:
    ids, truth = buyer_ids(exchange, seed=2, others=2000)
    with exchange.client() as c, ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        answer = pool.submit(c.psi, "visits", "patient_id", ids, party=HOLDER, mode="sum",
                             value_columns=["cost"], parallel=False, request_id="restart-psi-sum")
        # The holder has answered; the buyer reads W and S, re-blinds and sends Z.
        killed = kill_when(exchange, "restart-psi-sum", lambda job, task: task == "CONTRIBUTED")
        ans = answer.result(timeout=240)
    print(f"psi-sum: gateway killed in {killed}; the job ended after {time.monotonic() - started:.1f} s")
    rows = [r for r in exchange.rows_of([HOLDER]) if r["patient_id"] in truth]
    assert ans.size == len(truth)
    assert ans.totals == {"cost": sum((Fraction(Decimal(r["cost"])) for r in rows), Fraction(0))}
