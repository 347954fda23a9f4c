"""Reading benchmark records (benchmarks/results/*.json) for charts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("datawharf.gateway")
MAX_RECORDS = 500


def load_records(results_dir: Path | None) -> list[dict[str, Any]]:
    """Every readable record, oldest first; unreadable files are skipped and logged."""
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
    return out
