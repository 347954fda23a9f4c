import json
from pathlib import Path

import pytest

from gateway.web.app import AccessError, check_access, is_loopback
from gateway.web.benchdata import load_records
from gateway.web.report import render, write_report


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True),
                                        ("localhost", True), ("0.0.0.0", False), ("10.1.2.3", False), ("", False)])
def test_loopback_detection(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_remote_binding_needs_flag_token_and_https() -> None:
    check_access("127.0.0.1", allow_remote=False, token=None)
    check_access("::1", allow_remote=False, token=None, tls=False)
    with pytest.raises(AccessError, match="--http-allow-remote"):
        check_access("0.0.0.0", allow_remote=False, token="x" * 32, tls=True)
    with pytest.raises(AccessError, match="at least 16"):
        check_access("0.0.0.0", allow_remote=True, token="short", tls=True)
    with pytest.raises(AccessError, match="must serve HTTPS with the gateway's certificate: start the gateway with --identity"):
        check_access("0.0.0.0", allow_remote=True, token="x" * 32)
    with pytest.raises(AccessError, match="HTTPS"):
        check_access("10.1.2.3", allow_remote=True, token="x" * 32, tls=False)
    check_access("0.0.0.0", allow_remote=True, token="x" * 32, tls=True)


def record(ts: str, value: float, quick: bool = False) -> dict:  # type: ignore[type-arg]
    return {"benchmark": "aggregate", "timestamp": ts, "quick": quick, "versions": {"git_commit": "abc"},
            "results": [{"case": "ckks@inprocess", "metric": "values_per_s", "value": value, "unit": "values/s",
                         "repetitions": [value]}], "checks": []}


def test_records_sorted_and_bad_files_skipped(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps(record("2026-01-02T00:00:00Z", 2)))
    (tmp_path / "a.json").write_text(json.dumps(record("2026-01-03T00:00:00Z", 3)))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    out = load_records(tmp_path)
    assert [r["results"][0]["value"] for r in out] == [2, 3]
    assert load_records(tmp_path / "missing") == []


def test_report_is_self_contained(tmp_path: Path) -> None:
    evil = record("2026-01-02T00:00:00Z", 2)
    evil["params"] = {"note": "</script><script>alert(1)</script>"}
    (tmp_path / "r.json").write_text(json.dumps(evil))
    out = tmp_path / "report.html"
    assert write_report(tmp_path, out) == 1
    text = out.read_text()
    assert "Chart.js v4" in text and "renderBenchmarks" in text and "ckks@inprocess" in text
    assert "http://" not in text.split("Chart.js v4")[0] and "<script src" not in text
    assert "</script><script>alert(1)" not in text
    assert render([]).count("<script>") == 3
