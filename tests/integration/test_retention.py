"""What a finished job leaves behind at the gateway: no per-holder ciphertext, in any final state.

Each holder's ciphertexts are taken from the gateway's own wire log, then
looked for, after the job ends DONE, FAILED or CANCELLED, in the job store,
its write-ahead log and the PSI spool: not one 64-byte run of any of them may
remain. The gateway's files are its operator's alone (0600, directories 0700).
"""

from __future__ import annotations

import json
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
    # And each ending left a destruction receipt in the ledger.
    import subprocess
    import sys

    out = exchange.root / "ledger-endings.jsonl"
    subprocess.run([sys.executable, "-m", "wharf", "audit", "export", "--data-dir", str(exchange.gateway_dir),
                    "--out", str(out)], check=True, capture_output=True)
    receipts = {(e["fields"].get("job_id"), e["fields"].get("artefact")) for e in
                map(json.loads, out.read_text().splitlines()) if e["kind"] == "destroyed"}
    assert {(j.job_id, "contributions") for j in (done, failed, cancelled)} <= receipts


def test_the_gateways_files_are_its_operators_alone(exchange: Exchange) -> None:
    for path in exchange.gateway_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is mode {oct(mode)}"
    assert stat.S_IMODE(Path(exchange.gateway_dir).stat().st_mode) & 0o077 == 0


def test_a_buyer_purges_its_result_and_gets_a_destruction_receipt(exchange: Exchange) -> None:
    import subprocess
    import sys

    from datawharf.errors import FailedPrecondition, NotFound

    exchange.start_party("riverside", _config(exchange, "riverside"))
    exchange.wait_online(REAL)
    with exchange.client() as c, exchange.client("mallory") as m:
        job = c.submit("visits", "cost", "count", parties=list(REAL))
        c.result(job)
        with pytest.raises(NotFound):
            m.purge(job.job_id)  # not mallory's
        receipt = c.purge(job)
        assert receipt.artefact == "result" and receipt.ledger_seq > 0 and len(receipt.ledger_hash) == 64
        # The buyer fetches its job's destruction receipts itself, signed by the gateway.
        mine = [json.loads(x) for x in c.job_ledger(job)]
        assert mine[0]["kind"] == "genesis"
        assert {e["fields"].get("artefact") for e in mine if e["kind"] == "destroyed"} == {"contributions", "result"}
        with pytest.raises(NotFound):
            m.job_ledger(job.job_id)
        with pytest.raises(FailedPrecondition, match="destroyed"):
            c.fetch_result(job.job_id)
        with pytest.raises(FailedPrecondition, match="no result to purge"):
            c.purge(job)
        exchange.stop_party("riverside")
        # A running job (it waits for riverside) cannot be purged.
        running = c.submit("visits", "cost", "count", parties=list(REAL), min_parties=2, timeout_s=30)
        with pytest.raises(FailedPrecondition, match="cancel it first"):
            c.purge(running)
        c.cancel(running)
    out = exchange.root / "ledger.jsonl"
    subprocess.run([sys.executable, "-m", "wharf", "audit", "export", "--data-dir", str(exchange.gateway_dir),
                    "--out", str(out)], check=True, capture_output=True)
    entries = [json.loads(x) for x in out.read_text().splitlines()]
    destroyed = [e for e in entries if e["kind"] == "destroyed" and e["fields"].get("job_id") == job.job_id]
    assert {e["fields"]["artefact"] for e in destroyed} == {"contributions", "result"}
    assert any(e["seq"] == receipt.ledger_seq and e["hash"] == receipt.ledger_hash for e in destroyed)


def _config(ex: Exchange, name: str) -> str:
    """A holder's TOML as first written, without the identity lines start_party adds."""
    text = (ex.root / f"{name}.toml").read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith(("identity =", "crl =", "insecure ="))) + "\n"
