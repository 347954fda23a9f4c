"""`python -m benchmarks aggregate --quick` as a smoke test: it must compute
correct sums and write a well-formed record. Speed is not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_aggregate_quick(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "aggregate", "--quick", "--json", str(tmp_path / "r.json"),
         "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["benchmark"] == "aggregate" and record["quick"] is True
    assert {"cpu_model", "cores", "memory_gib"} <= set(record["machine"])
    assert {"python", "git_commit", "tenseal", "phe"} <= set(record["versions"])
    cases = {r["case"] for r in record["results"]}
    for backend in ("paillier-naive", "paillier-packed", "bfv", "ckks"):
        assert {f"{backend}@inprocess", f"{backend}@gateway"} <= cases
    assert "plaintext@inprocess" in cases
    for r in record["results"]:
        assert {"case", "metric", "value", "unit", "repetitions"} <= set(r)
        assert r["repetitions"] and min(r["repetitions"]) <= r["value"] <= max(r["repetitions"])
    errors = {r["case"]: r["value"] for r in record["results"] if r["metric"] == "max_abs_error"}
    assert all(v == 0 for c, v in errors.items() if not c.startswith("ckks"))
    assert len(list((tmp_path / "results").glob("aggregate-quick-*.json"))) == 1
    assert "packed_vs_naive_paillier_speedup" in out.stdout


def test_psi_quick(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "psi", "--quick", "--json", str(tmp_path / "p.json"),
         "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "p.json").read_text())
    cases = {r["case"] for r in record["results"]}
    assert {"hash-join", "dh-floor", "psi@inprocess", "psi@gateway", "psi-sum@gateway",
            "psi-unbalanced-warm@gateway"} <= cases
    assert all("n" in r for r in record["results"] if r["case"].startswith(("psi", "hash", "dh")))


def test_ledger_quick(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "ledger", "--quick", "--json", str(tmp_path / "l.json"),
         "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "l.json").read_text())
    assert {r["case"] for r in record["results"]} == {"jobs@ledger", "jobs@no-ledger"}
    assert [c["name"] for c in record["checks"]] == ["ledger_over_no_ledger_jobs_per_s"]


def test_dp_quick(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "dp", "--quick", "--json", str(tmp_path / "d.json"),
         "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "d.json").read_text())
    assert {(r["case"], r["metric"]) for r in record["results"]} == {
        ("sum@exact", "seconds"), ("sum@dp", "seconds"), ("sum@dp", "relative_error")}
    assert [c["name"] for c in record["checks"]] == ["dp_over_exact_seconds", "relative_error_over_declared_sd"]


def test_market_quick(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "market", "--quick", "--json", str(tmp_path / "m.json"),
         "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "m.json").read_text())
    assert {r["case"] for r in record["results"]} == {"jobs@market", "jobs@no-market"}
    assert [c["name"] for c in record["checks"]] == ["market_over_no_market_jobs_per_s"]


def test_load_quick(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "load", "--quick", "--profile", "--json", str(tmp_path / "load.json"),
         "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads((tmp_path / "load.json").read_text())
    assert record["params"]["buyers"] == 3 and record["params"]["holders"] == 2
    metrics = {(r["case"], r["metric"]): r["value"] for r in record["results"]}
    # One gateway on SQLite, then two replicas on a PostgreSQL server the run starts itself.
    for conf in ("sqlite-1gw", "postgresql-2gw"):
        for kind in ("single", "vector", "psi", "all"):
            assert metrics[(f"{kind}@{conf}", "errors")] == 0
            assert metrics[(f"{kind}@{conf}", "jobs")] >= 1  # a quick run gives every kind a first job
            assert {"jobs_per_s", "p50_seconds", "p99_seconds"} <= {m for c, m in metrics if c == f"{kind}@{conf}"}
        assert ("one-buyer@" + conf, "jobs_per_s") in metrics
    store, replicated = record["stores"]
    assert store["name"] == "sqlite-1gw" and store["store"] == "sqlite" and store["replicas"] == 1
    assert replicated["name"] == "postgresql-2gw" and replicated["replicas"] == 2
    assert set(store["profile"]["stages"]["single"]) == {
        "keygen_sign", "submit_rpc", "queue", "holders", "gateway_finish", "to_buyer", "fetch_decrypt"}
    assert set(store["profile"]["cpu_seconds"]) == {"gateway", "holders", "buyers"}
    assert next(c for c in record["checks"] if c["name"] == "errors@sqlite-1gw")["ok"] is True


def test_load_configuration_the_launcher_cannot_start_fails_at_once(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "load", "--quick", "--store", "mysql://bench:secret@127.0.0.1/wharf",
         "--replicas", "2", "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1 and "FAILED" in out.stderr
    assert "mysql://bench:***@127.0.0.1/wharf" in out.stderr and "secret" not in out.stderr
    assert "benchmark load" in out.stdout and "sqlite-1gw:" not in out.stdout  # nothing was started
    assert not (tmp_path / "results").exists()
