"""A gateway on PostgreSQL whose database goes away: it reports NOT_SERVING on health (so a balancer
sends callers elsewhere) and claims no work, then serves again once the database is back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.exchange import Exchange
from tests.postgres import Cluster, start_or_skip
from wharf.demo import truth


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = start_or_skip()  # its own server: this module stops and restarts it
    try:
        yield c
    finally:
        c.stop()


def health(ex: Exchange) -> int:
    with ex.channel() as ch:
        try:
            return int(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""),
                                                            timeout=5).status)
        except grpc.RpcError:
            return -1


def until(check, what: str, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ex(start_exchange, cluster: Cluster) -> Exchange:  # type: ignore[no-untyped-def]
    return start_exchange("outage", store=cluster.database(), parties=("st-mary", "riverside"), rows=200)


def test_a_lost_database_turns_health_to_not_serving_until_it_returns(ex: Exchange, cluster: Cluster) -> None:
    assert health(ex) == health_pb2.HealthCheckResponse.SERVING
    cluster.pause()
    try:
        until(lambda: health(ex) == health_pb2.HealthCheckResponse.NOT_SERVING, "health to say NOT_SERVING")
    finally:
        cluster.resume()
    until(lambda: health(ex) == health_pb2.HealthCheckResponse.SERVING, "health to say SERVING again")
    log = (ex.logs / "gateway.log").read_text()
    assert "unreachable; not claiming work" in log and "reachable again" in log
    with ex.client() as c:  # and the exchange works as before
        answer = c.result(c.submit("visits", "cost", "sum", timeout_s=60, backend="bfv"), timeout_s=90)
    assert answer.exact == truth(ex.rows_of(answer.contributors), "cost", "sum", "")


def test_the_ledger_of_a_postgres_store_exports_and_verifies(ex: Exchange, tmp_path: Path) -> None:
    out = tmp_path / "ledger.jsonl"
    export = subprocess.run([sys.executable, "-m", "wharf", "audit", "export", "--store", ex.store, "--out", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    check = subprocess.run([sys.executable, "-m", "wharf", "audit", "verify", str(out), "--ca", str(ex.root / "ca" / "ca.pem")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "job_done" in out.read_text()
