"""A holder's OPRF epoch key: written 0600 from the start, and its replacement is recorded."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from datawharf.model import PsiJob, PsiMode
from parties.config import load_party_config
from parties.runner import Runner
from parties.psi_runner import PsiRunner


def test_a_replaced_epoch_key_leaves_a_destruction_record(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text("patient_id\nP1\nP2\n")
    (tmp_path / "p.toml").write_text('''name = "h"
gateway = "127.0.0.1:1"
insecure = true

[[datasets]]
name = "visits"
source = "v.csv"
columns = [{ name = "patient_id", type = "string", join_key = true }]
[datasets.policy]
allowed_buyers = ["*"]
allowed_psi = ["unbalanced"]
''')
    cfg = load_party_config(tmp_path / "p.toml")
    destroyed: list[dict[str, str]] = []
    runner = PsiRunner(cfg, Runner(cfg).sources, tmp_path / "state", on_destroyed=lambda **f: destroyed.append(f))
    job = PsiJob("visits", "patient_id", PsiMode.UNBALANCED, buyer_set_size=1)
    _, first, _ = runner._epoch(cfg.datasets[0], job, ["P1", "P2"])
    meta = tmp_path / "state" / "oprf" / "visits" / "patient_id" / "epoch.json"
    assert stat.S_IMODE(meta.stat().st_mode) == 0o600
    assert destroyed == []
    time.sleep(0.01)
    (tmp_path / "v.csv").write_text("patient_id\nP1\nP2\nP3\n")  # new data: a new epoch and key
    os.utime(tmp_path / "v.csv")
    _, second, _ = runner._epoch(cfg.datasets[0], job, ["P1", "P2", "P3"])
    assert second != first
    assert destroyed == [{"artefact": "oprf_epoch_key", "dataset": "visits", "column": "patient_id",
                          "epoch": first, "method": "key file replaced by the next epoch's"}]
