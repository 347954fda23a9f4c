"""The annotations the benchmark view reads: what each check compares, its target, the previous run."""

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.web.benchdata import annotate, describe, load_records, parse_target, trend
from gateway.web.report import render


def psi(ts: str, ratio: float | None, *, quick: bool = False, floor: float = 20.0, peer: bool = True) -> dict[str, Any]:
    n = 262144
    results = [
        {"case": "dh-floor", "metric": "seconds", "value": floor, "unit": "s", "n": n},
        {"case": "psi@gateway", "metric": "seconds", "value": 7.0, "unit": "s", "n": 65536},
        {"case": "psi@gateway", "metric": "seconds", "value": 25.0, "unit": "s", "n": n},
        {"case": "psi@gateway-insecure", "metric": "seconds", "value": 24.0, "unit": "s", "n": n},
        {"case": "gateway-process", "metric": "peak_rss_mib", "value": 600.0, "unit": "MiB", "n": 1048576},
        {"case": "holder-00-process", "metric": "peak_rss_mib", "value": 1400.0, "unit": "MiB", "n": 1048576},
    ]
    if peer:
        results.append({"case": "openmined", "metric": "seconds", "value": 100.0, "unit": "s", "n": n})
    checks = [
        {"name": f"gateway_over_dh_floor_n{n}", "value": ratio, "target": "<= 1.5",
         "ok": None if ratio is None else ratio <= 1.5},
        {"name": f"openmined_over_gateway_n{n}", "value": 4.0 if peer else None, "target": ">= 3",
         "ok": True if peer else None},
        {"name": "max_process_peak_mib_n1048576", "value": 1400.0, "target": "< 2048", "ok": True},
        {"name": "something_new", "value": 2.0, "target": "about two", "ok": True},
    ]
    return {"benchmark": "psi", "timestamp": ts, "quick": quick, "versions": {"git_commit": ts[-3:]},
            "params": {}, "results": results, "checks": checks}


def view(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c["view"] for c in record["checks"] if c["name"] == name)


@pytest.mark.parametrize("text, parsed", [
    ("<= 1.5", {"op": "<=", "value": 1.5, "note": None}),
    (">= 50", {"op": ">=", "value": 50.0, "note": None}),
    ("< 3 (full run)", {"op": "<", "value": 3.0, "note": "full run"}),
    ("< 2048", {"op": "<", "value": 2048.0, "note": None}),
    ("> 1e-3", {"op": ">", "value": 0.001, "note": None}),
    ("about two", None), ("", None), (None, None),
])
def test_targets_parse(text: str | None, parsed: dict[str, Any] | None) -> None:
    assert parse_target(text) == parsed


def test_a_ratio_is_paired_with_the_two_measurements_at_its_size() -> None:
    rec = psi("2026-01-01T00:00:00Z", 1.25)
    v = describe(rec, rec["checks"][0])
    assert v["kind"] == "ratio" and "n=262,144" in v["words"]
    assert v["ours"] == {"case": "psi@gateway", "value": 25.0, "unit": "s", "n": 262144}  # not the n=65536 run
    assert v["base"]["case"] == "dh-floor" and v["base"]["value"] == 20.0 and v["role"] == "floor"
    assert v["target"] == {"op": "<=", "value": 1.5, "note": None}


def test_the_peer_ratio_names_the_peer_and_says_when_it_was_not_measured() -> None:
    present, absent = psi("2026-01-01T00:00:00Z", 1.2), psi("2026-01-02T00:00:00Z", 1.2, peer=False)
    v = describe(present, present["checks"][1])
    assert (v["ours"]["case"], v["base"]["case"], v["base"]["value"], v["role"]) == ("psi@gateway", "openmined", 100.0, "peer")
    v = describe(absent, absent["checks"][1])
    assert v["ours"]["value"] == 25.0 and v["base"] == {"case": "openmined", "value": None, "unit": None, "n": 262144}


def test_an_absolute_check_names_the_case_that_set_it_and_an_unknown_one_keeps_its_name() -> None:
    rec = psi("2026-01-01T00:00:00Z", 1.2)
    peak = describe(rec, rec["checks"][2])
    assert peak["kind"] == "value" and peak["unit"] == "MiB" and peak["base"] is None
    assert peak["ours"]["case"] == "holder-00-process"
    new = describe(rec, rec["checks"][3])
    assert new["words"] == "something_new" and new["ours"] is None and new["base"] is None and new["target"] is None


def test_derived_floors_come_from_ours_over_the_ratio() -> None:
    rec = {"benchmark": "aggregate", "results": [{"case": "ckks@gateway", "metric": "seconds", "value": 1.5,
                                                  "unit": "s", "n": 100000}]}
    v = describe(rec, {"name": "ckks_gateway_over_inprocess_time", "value": 1.25, "target": "<= 1.5"})
    assert v["base"]["case"] == "ckks@inprocess" and v["base"]["value"] == pytest.approx(1.2) and v["base"]["derived"]
    v = describe(rec, {"name": "bfv_tls_and_signing_over_insecure_time", "value": None, "target": "<= 1.25"})
    assert v["ours"] is None and v["base"]["value"] is None  # bfv was not run: nothing invented


def test_previous_is_the_last_run_of_the_same_kind_that_measured_the_check() -> None:
    records = annotate([
        psi("2026-01-01T00:00:00Z", 1.6),
        psi("2026-01-02T00:00:00Z", 1.0, quick=True),   # a quick run is no full run's previous
        psi("2026-01-03T00:00:00Z", None, peer=False),  # nor is a run that could not measure it
        psi("2026-01-04T00:00:00Z", 1.2),
        psi("2026-01-05T00:00:00Z", 1.19, quick=True),
    ])
    first, _quick, unmeasured, latest, quick2 = records
    assert view(first, "gateway_over_dh_floor_n262144")["previous"] is None
    assert view(unmeasured, "gateway_over_dh_floor_n262144")["previous"]["value"] == 1.6
    assert view(unmeasured, "gateway_over_dh_floor_n262144")["change"] is None
    v = view(latest, "gateway_over_dh_floor_n262144")
    assert v["previous"] == {"value": 1.6, "ok": False, "timestamp": "2026-01-01T00:00:00Z", "commit": "00Z"}
    assert v["change"] == pytest.approx(-0.25) and v["trend"] == "better"
    v = view(quick2, "gateway_over_dh_floor_n262144")
    assert v["previous"]["value"] == 1.0 and v["trend"] == "worse"
    # The peer was absent on the unmeasured run; the latest compares with the first.
    assert view(latest, "openmined_over_gateway_n262144")["previous"]["timestamp"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("change, target, expected", [
    (-0.1, "<= 1.5", "better"), (0.1, "<= 1.5", "worse"), (0.1, ">= 3", "better"), (-0.1, ">= 3", "worse"),
    (0.01, "<= 1.5", "same"), (None, "<= 1.5", None), (0.5, "about two", None),
])
def test_trend_follows_the_direction_the_target_wants(change: float | None, target: str, expected: str | None) -> None:
    assert trend(change, parse_target(target)) == expected


def test_load_records_annotates_and_the_report_carries_the_same_annotations(tmp_path: Path) -> None:
    for i, ratio in enumerate((1.6, 1.2)):
        (tmp_path / f"psi-{i}.json").write_text(json.dumps(psi(f"2026-01-0{i + 1}T00:00:00Z", ratio)))
    (tmp_path / "broken.json").write_text(json.dumps({"benchmark": "x", "results": [], "checks": ["junk"]}))
    records = load_records(tmp_path)
    assert view(records[-1], "gateway_over_dh_floor_n262144")["previous"]["value"] == 1.6
    assert next(r for r in records if r["benchmark"] == "x")["checks"] == []  # what the page could not draw
    page = render(records)
    assert 'name="viewport"' in page and ".chart-wrap {" in page and "table.bench-summary" in page
    assert '"previous": {"value": 1.6' in page and '"words": "PSI through the gateway vs the Diffie-Hellman floor' in page
