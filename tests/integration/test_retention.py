"""What a finished job leaves behind at the gateway: no per-holder ciphertext, in any final state.

Each holder's ciphertexts are taken from the gateway's own wire log, then
looked for, after the job ends DONE, FAILED or CANCELLED, in the job store,
its write-ahead log and the PSI spool: not one 64-byte run of any of them may
remain. The gateway's files are its operator's alone (0600, directories 0700).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from buyers.client import JobFailed
from datawharf.v1 import common_pb2
from tests.exchange import Exchange, StartExchange
from tests.leaks import read_wire_log, wire_traffic

REAL = ("st-mary", "riverside")
RUN = 64


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("retention", parties=REAL, rows=200, wire_log=True)


def contributed_ciphertexts(ex: Exchange) -> list[bytes]:
    """Every ciphertext a holder has sent so far, reassembled from the gateway's wire log."""
    assert ex.wire_log is not None
    _, payloads = wire_traffic(read_wire_log(ex.wire_log))
    return [bytes(c) for p in payloads if isinstance(p.message, common_pb2.EncryptedFigures)
            for c in p.message.ciphertexts]


def leftovers(ex: Exchange, secrets: list[bytes]) -> list[str]:
    """Files under the gateway's data directory holding a run of any of ``secrets``."""
    found = []
    for path in sorted(p for p in ex.gateway_dir.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        for s in secrets:
            if any(s[i:i + RUN] in blob for i in range(0, max(1, len(s) - RUN), RUN)):
                found.append(path.name)
                break
    return found


def test_done_failed_and_cancelled_jobs_keep_no_ciphertext(exchange: Exchange) -> None:
    with exchange.client() as c:
        done = c.submit("visits", "cost", "sum", parties=list(REAL), min_parties=2)
        c.result(done)
        exchange.stop_party("riverside")
        # FAILED: st-mary contributes, riverside never answers, min_parties 2 cannot be met.
        failed = c.submit("visits", "cost", "sum", parties=list(REAL), min_parties=2, timeout_s=4)
        with pytest.raises(JobFailed):
            c.result(failed, timeout_s=60)
        # CANCELLED: st-mary contributes, the buyer cancels while riverside is away.
        cancelled = c.submit("visits", "age", "sum", parties=list(REAL), min_parties=2, timeout_s=60)
        for view in c.watch(cancelled, timeout_s=30):
            if any(t.state == "CONTRIBUTED" for t in view.tasks):
                break
        assert c.cancel(cancelled).state == "CANCELLED"
        states = {j.job_id: c.status(j).state for j in (done, failed, cancelled)}
    assert list(states.values()) == ["DONE", "FAILED", "CANCELLED"]
    secrets = contributed_ciphertexts(exchange)
    assert len(secrets) >= 4  # two for the DONE job, one each for the others
    assert leftovers(exchange, secrets) == []


def test_the_gateways_files_are_its_operators_alone(exchange: Exchange) -> None:
    for path in exchange.gateway_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is mode {oct(mode)}"
    assert stat.S_IMODE(Path(exchange.gateway_dir).stat().st_mode) & 0o077 == 0
