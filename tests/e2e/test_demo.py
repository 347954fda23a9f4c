"""`wharf demo` itself: a whole exchange, results checked against the truth."""

import subprocess
import sys
from pathlib import Path


def test_demo_runs_and_every_result_matches(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wharf", "demo", "--workdir", str(tmp_path), "--rows", "1000"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all results match the plaintext truth" in out.stdout, out.stdout + out.stderr
    from wharf.demo import JOBS

    # + four PSI jobs, a noisy sum, a refused differencing attack and the statements that agree
    assert out.stdout.count("✓") == len(JOBS) + 7 and "✗" not in out.stdout, out.stdout
    assert "each approved by the operator" in out.stdout and "signed it" in out.stdout
    assert "equal to what the hospitals are paid" in out.stdout
    assert "does not allow filtering on 'patient_id'" in out.stdout
    assert "psi-sum cost" in out.stdout
    for backend in ("paillier-packed", "bfv", "ckks"):
        assert backend in out.stdout
    assert "northgate refused" in out.stdout
    assert "ledger verifies:" in out.stdout and "vouched for by a gateway certificate of the CA: yes" in out.stdout
    assert "holder receipts agree with the ledger" in out.stdout
    for log in ("gateway", "st-mary", "riverside", "northgate"):
        text = (tmp_path / "logs" / f"{log}.log").read_text()
        assert "Traceback" not in text, f"{log}.log:\n{text[-4000:]}"
