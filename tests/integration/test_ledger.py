"""The gateway's ledger over real jobs: exported, verified with the CA, tampered with.

Jobs run through a real exchange (mutual TLS); the operator exports the
ledger with `wharf audit export`, anyone verifies it with `wharf audit
verify --ca`. Flipping a byte, deleting an entry, swapping two or replacing a
signature makes verification fail naming the entry; an untouched export
verifies, also after the gateway restarts with jobs before and after.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.exchange import Exchange, StartExchange

REAL = ("st-mary", "riverside")


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("ledger", parties=REAL, rows=200)


def wharf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wharf", *args], capture_output=True, text=True, timeout=120)


def export(ex: Exchange, out: Path) -> list[str]:
    done = wharf("audit", "export", "--data-dir", str(ex.gateway_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out.read_text().splitlines()


def verify(ex: Exchange, path: Path, *, witnesses: tuple[str, ...] = ()) -> dict[str, object]:
    assert ex.ca is not None
    receipts = [a for name in witnesses for a in ("--receipts", str(ex.root / f".wharf-state-{name}"))]
    out = wharf("audit", "verify", str(path), "--ca", str(ex.ca.dir / "ca.pem"), "--json", *receipts)
    return json.loads(out.stdout)


def test_the_ledger_records_every_use_and_verifies_across_a_restart(exchange: Exchange, tmp_path: Path) -> None:
    with exchange.client() as c:
        done = c.submit("visits", "cost", "sum", parties=list(REAL), min_parties=2)
        c.result(done)
        ids = [r["patient_id"] for r in exchange.rows_of(["st-mary"])][:30]
        psi = c.psi("visits", "patient_id", ids, party="st-mary", parallel=False)
    address = exchange.address
    exchange.stop_gateway()
    exchange.start_gateway(listen=address)  # the holders dial the same address back
    exchange.wait_online(REAL)
    with exchange.client() as c:
        later = c.submit("visits", "age", "mean", parties=list(REAL))
        c.result(later)
    lines = export(exchange, tmp_path / "ledger.jsonl")
    report = verify(exchange, tmp_path / "ledger.jsonl", witnesses=REAL)
    assert report["ok"] is True and report["bound_to_ca"] is True, report
    assert int(report["receipts"]) >= 2 * 3 + 2  # type: ignore[call-overload]  # a task and an answer per job
    # Two aggregate jobs (the buyer's signature and a receipt from each of two holders) and one PSI
    # job (the buyer's signature and the holder's receipt), every signature checked.
    assert report["signatures"] == 2 * (1 + 2) + (1 + 1), report
    kinds = [json.loads(x)["kind"] for x in lines]
    assert kinds[0] == "genesis" and kinds.count("genesis") == 1  # the restart continued the same chain
    for k in ("job_submitted", "contribution", "job_done", "destroyed", "party_connected"):
        assert k in kinds
    shown = wharf("audit", "show", done.job_id, "--data-dir", str(exchange.gateway_dir))
    assert shown.returncode == 0 and "job_submitted" in shown.stdout and "signed by the buyer" in shown.stdout
    assert psi.job_id in shown.stdout or psi.job_id in (tmp_path / "ledger.jsonl").read_text()
    # Nothing the holders contributed is in the ledger: no ciphertext, no row.
    text = "\n".join(lines)
    assert "ciphertexts" not in text and not any(r["patient_id"] in text for r in exchange.rows_of(["st-mary"]))


def test_tampering_is_named(exchange: Exchange, tmp_path: Path) -> None:
    lines = export(exchange, tmp_path / "ledger.jsonl")
    assert len(lines) > 6

    def check(name: str, edited: list[str], seq: int, words: str) -> None:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(edited) + "\n")
        report = verify(exchange, path)
        assert report["ok"] is False and report["entry"] == seq and words in str(report["error"]), (name, report)

    flipped = json.loads(lines[4])
    flipped["fields"]["detail"] = str(flipped["fields"].get("detail", "")) + "!"
    check("flip", lines[:4] + [json.dumps(flipped)] + lines[5:], 4, "altered")
    check("delete", lines[:3] + lines[4:], 4, "should be")
    check("reorder", lines[:3] + [lines[4], lines[3]] + lines[5:], 4, "should be")
    resigned = json.loads(lines[5])
    resigned["sig"] = json.loads(lines[6])["sig"]
    check("signature", lines[:5] + [json.dumps(resigned)] + lines[6:], 5, "signature does not match")
    # History cut after a holder saw it: the chain that is left verifies, the holder's receipts do not.
    cut = tmp_path / "cut.jsonl"
    last_offer = max(i for i, x in enumerate(lines) if json.loads(x)["kind"] == "task_offered"
                     and json.loads(x)["fields"].get("party") == "st-mary")
    cut.write_text("\n".join(lines[:last_offer]) + "\n")
    assert verify(exchange, cut)["ok"] is True
    report = verify(exchange, cut, witnesses=("st-mary",))
    assert report["ok"] is False and "st-mary receipt" in str(report["error"]), report
    assert "which the ledger does not hold" in str(report["error"]), report
    listed = wharf("party", "receipts", "--config", str(exchange.root / "st-mary.toml"))
    assert listed.returncode == 0 and "contributed" in listed.stdout and "ledger head" in listed.stdout
    untouched = tmp_path / "untouched.jsonl"
    untouched.write_text("\n".join(lines) + "\n")
    assert verify(exchange, untouched)["ok"] is True
