"""A kept job read from another invocation: `job aggregate --detach --keep`, then `job result`, `list`, `forget`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buyers.keystore import Keystore
from tests.exchange import Exchange
from wharf.cli import app, exact_text
from wharf.demo import HOSPITALS, truth


def test_a_detached_kept_job_is_read_list_and_forgotten_from_new_invocations(exchange: Exchange, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_KEYSTORE_PASSPHRASE", "a buyer's secret")
    ks = tmp_path / "keystore"
    ident = str(exchange.identity("acme-insurance"))
    common = ["--keystore", str(ks), "--identity", ident]
    sub = CliRunner().invoke(app, ["job", "aggregate", "--dataset", "visits", "--column", "cost", "--stat", "sum",
                                   "--where", "age >= 65", "--backend", "paillier-packed", "--detach", "--keep",
                                   "--gateway", exchange.address, *common])
    assert sub.exit_code == 0, sub.output
    job_id = sub.output.strip()
    assert [p.name for p in ks.iterdir()] == [f"{job_id}.key"]

    res = CliRunner().invoke(app, ["job", "result", job_id, "--json", *common])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["job_id"] == job_id and out["where"] == "age >= 65"
    expected = truth(exchange.rows_of(HOSPITALS), "cost", "sum", "age >= 65")
    assert out["exact"] == exact_text(expected) and out["value"] == pytest.approx(float(expected))

    listed = CliRunner().invoke(app, ["job", "list", *common])
    assert listed.exit_code == 0, listed.output
    assert f"{job_id}  DONE  sum of cost over visits" in listed.output

    moved = tmp_path / "moved"  # the same job kept for a gateway that is not there
    Keystore(moved, "a buyer's secret").save(Keystore(ks, "a buyer's secret").load(job_id).job, "127.0.0.1:9")
    down = CliRunner().invoke(app, ["job", "list", "--keystore", str(moved), "--identity", ident])
    assert down.exit_code == 0 and f"{job_id}  unknown: " in down.output, down.output

    tenseal = CliRunner().invoke(app, ["job", "aggregate", "--dataset", "visits", "--column", "cost", "--stat", "sum",
                                       "--backend", "bfv", "--keep", "--gateway", exchange.address, *common])
    assert tenseal.exit_code == 1 and "--keep stores Paillier jobs only" in tenseal.output

    wrong = CliRunner().invoke(app, ["job", "result", job_id, *common], env={"WHARF_KEYSTORE_PASSPHRASE": "nope"})
    assert wrong.exit_code == 1 and f"{job_id}.key: does not open: wrong passphrase" in wrong.output

    gone = CliRunner().invoke(app, ["job", "forget", job_id, "--keystore", str(ks)])
    assert gone.exit_code == 0, gone.output
    assert list(ks.iterdir()) == []
    again = CliRunner().invoke(app, ["job", "result", job_id, *common])
    assert again.exit_code == 1 and "no stored key" in again.output
