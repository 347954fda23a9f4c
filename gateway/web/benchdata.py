"""Reading benchmark records (benchmarks/results/*.json) for charts.

Every check of every record is given a ``view``: the comparison in words, the
two measurements behind a ratio where they can be found, the target parsed,
and the previous run's figure. Both the dashboard (/api/benchmarks) and
`wharf bench report` read records through load_records, so both pages show
the same answers.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("datawharf.gateway")
MAX_RECORDS = 500
# A change smaller than this is noise between runs, not a trend.
SAME_WITHIN = 0.02

Record = dict[str, Any]


def load_records(results_dir: Path | None) -> list[Record]:
    """Every readable record, oldest first, its checks annotated; unreadable files are skipped and logged."""
    if results_dir is None or not results_dir.is_dir():
        return []
    out = []
    for path in sorted(results_dir.glob("*.json"))[-MAX_RECORDS:]:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("skipping benchmark record %s: %s", path, exc)
            continue
        if isinstance(record, dict) and "benchmark" in record and isinstance(record.get("results"), list):
            record["file"] = path.name
            out.append(record)
    out.sort(key=lambda r: str(r.get("timestamp", "")))
    return annotate(out)


_TARGET = re.compile(r"^\s*(<=|>=|<|>|==)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:\((.*)\))?\s*$")


def parse_target(target: Any) -> dict[str, Any] | None:
    """``'< 3 (full run)'`` -> ``{"op": "<", "value": 3.0, "note": "full run"}``; None when not of that form."""
    m = _TARGET.match(str(target or ""))
    if not m:
        return None
    return {"op": m.group(1), "value": float(m.group(2)), "note": (m.group(3) or "").strip() or None}


# What each headline check compares: ``ours`` and ``base`` name a result (case, metric, n; None matches
# any n); a base of "derived" is ours / ratio, for a floor the benchmark computes rather than measures.
# A rule with a ``unit`` is an absolute figure, not a ratio.
_Side = tuple[str, str, int | None]


def _rules(name: str) -> dict[str, Any] | None:
    m = re.fullmatch(r"(.*)_n(\d+)", name)
    stem, n = (m.group(1), int(m.group(2))) if m else (name, None)
    at = f", n={n:,}" if n is not None else ""
    gateway = ("psi@gateway", "seconds", n)
    by_size: dict[str, dict[str, Any]] = {
        "gateway_over_dh_floor": {"words": f"PSI through the gateway vs the Diffie-Hellman floor{at}",
                                  "ours": gateway, "base": ("dh-floor", "seconds", n), "role": "floor"},
        "gateway_over_dh_floor_alone": {
            "words": f"PSI through the gateway vs the floor at one core's x25519 speed{at}",
            "ours": gateway, "base": "derived", "base_label": "dh-floor (x25519 alone)", "role": "floor"},
        "openmined_over_gateway": {"words": f"OpenMined PSI vs ours through the gateway{at} (times slower)",
                                   "ours": gateway, "base": ("openmined", "seconds", n), "role": "peer"},
        "tls_and_signing_over_insecure": {"words": f"PSI with TLS and signing vs --insecure{at}",
                                          "ours": gateway, "base": ("psi@gateway-insecure", "seconds", n),
                                          "role": "insecure"},
        "psi_sum_over_psi": {"words": f"PSI-sum vs plain PSI through the gateway{at}",
                             "ours": ("psi-sum@gateway", "seconds", n), "base": gateway, "role": "baseline"},
        "max_process_peak_mib": {"words": f"Largest process's peak memory{at}", "ours": "max:peak_rss_mib",
                                 "unit": "MiB"},
    }
    if n is not None and stem in by_size:
        return by_size[stem]
    fixed: dict[str, dict[str, Any]] = {
        "unbalanced_warm_seconds": {"words": "Unbalanced PSI, warm holder: seconds",
                                    "ours": ("psi-unbalanced-warm@gateway", "seconds", None), "unit": "s"},
        "packed_vs_naive_paillier_speedup": {
            "words": "Packed Paillier vs naive Paillier, values/s in one process (times faster)",
            "ours": ("paillier-packed@inprocess", "values_per_s", None),
            "base": ("paillier-naive@inprocess", "values_per_s", None), "role": "baseline"},
        "ckks_gateway_over_inprocess_time": {
            "words": "CKKS through the gateway vs in one process, time",
            "ours": ("ckks@gateway", "seconds", None), "base": "derived", "base_label": "ckks@inprocess",
            "role": "floor"},
        "ckks_10x100k_gateway_seconds": {"words": "CKKS, 10 holders × 100k values through the gateway: seconds",
                                         "ours": ("ckks@gateway", "seconds", None), "unit": "s"},
    }
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"(.+)_bytes_per_value", name)
    if m:
        return {"words": f"{m.group(1).upper()} ciphertext bytes per value", "unit": "bytes",
                "ours": (f"{m.group(1)}@inprocess", "bytes_per_value", None)}
    m = re.fullmatch(r"(.+)_tls_and_signing_over_insecure_time", name)
    if m:
        case = m.group(1)
        return {"words": f"{case} through the gateway with TLS and signing vs --insecure, time",
                "ours": (f"{case}@gateway", "seconds", None),
                "base": (f"{case}@gateway-insecure", "seconds", None), "role": "insecure"}
    return None


def _find(record: Record, side: _Side) -> dict[str, Any] | None:
    case, metric, n = side
    for r in record.get("results", []):
        if r.get("case") == case and r.get("metric") == metric and (n is None or r.get("n") == n):
            return {"case": case, "value": r.get("value"), "unit": r.get("unit"), "n": r.get("n")}
    return None


def _largest(record: Record, metric: str) -> dict[str, Any] | None:
    rows = [r for r in record.get("results", []) if r.get("metric") == metric and isinstance(r.get("value"), (int, float))]
    if not rows:
        return None
    r = max(rows, key=lambda r: r["value"])
    return {"case": r["case"], "value": r["value"], "unit": r.get("unit"), "n": r.get("n")}


def describe(record: Record, check: dict[str, Any]) -> dict[str, Any]:
    """The comparison behind one check of one record: words, the two measurements, the target."""
    name = str(check.get("name", ""))
    value = check.get("value")
    rule = _rules(name)
    out: dict[str, Any] = {"words": name, "kind": "ratio", "ours": None, "base": None, "role": None, "unit": None,
                           "target": parse_target(check.get("target"))}
    if rule is None:
        return out
    out["words"] = rule["words"]
    if "unit" in rule:  # an absolute figure, not a ratio: ours is the figure itself
        out["kind"], out["unit"] = "value", rule["unit"]
    ours_spec = rule.get("ours")
    if isinstance(ours_spec, str) and ours_spec.startswith("max:"):
        out["ours"] = _largest(record, ours_spec[4:])
    elif ours_spec is not None:
        out["ours"] = _find(record, ours_spec)
    base_spec = rule.get("base")
    out["role"] = rule.get("role")
    if base_spec == "derived":
        ours = out["ours"]
        if ours and isinstance(value, (int, float)) and value and isinstance(ours.get("value"), (int, float)):
            out["base"] = {"case": rule["base_label"], "value": ours["value"] / value, "unit": ours.get("unit"),
                           "n": ours.get("n"), "derived": True}
    elif base_spec is not None:
        out["base"] = _find(record, base_spec)
        if out["base"] is None:
            out["base"] = {"case": base_spec[0], "value": None, "unit": None, "n": base_spec[2]}
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def trend(change: float | None, target: dict[str, Any] | None) -> str | None:
    """'better', 'worse' or 'same' for a relative change, by the direction the target wants."""
    if change is None or target is None or target["op"] == "==":
        return None
    if abs(change) < SAME_WITHIN:
        return "same"
    lower_is_better = target["op"] in ("<", "<=")
    return "better" if (change < 0) == lower_is_better else "worse"


def annotate(records: list[Record]) -> list[Record]:
    """Give each check a ``view`` (see describe) with ``previous``: the same check in the previous record
    of the same benchmark and the same ``quick`` flag that measured it, and the relative ``change``.

    ``records`` must be oldest first; they are changed in place and returned."""
    last: dict[tuple[str, bool, str], Record] = {}
    for record in records:
        series = (str(record.get("benchmark")), bool(record.get("quick")))
        checks = record.get("checks")
        record["checks"] = checks = [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []
        for check in checks:
            view = describe(record, check)
            prev_rec = last.get((*series, str(check.get("name"))))
            view["previous"] = None
            view["change"] = None
            if prev_rec is not None:
                prev = next(c for c in prev_rec["checks"] if c.get("name") == check.get("name"))
                view["previous"] = {"value": prev["value"], "ok": prev.get("ok"), "timestamp": prev_rec.get("timestamp"),
                                    "commit": (prev_rec.get("versions") or {}).get("git_commit")}
                if _number(check.get("value")) and prev["value"]:
                    view["change"] = (check["value"] - prev["value"]) / abs(prev["value"])
            view["trend"] = trend(view["change"], view["target"])
            check["view"] = view
        for check in checks:
            if _number(check.get("value")):
                last[(*series, str(check.get("name")))] = record
    return records
