"""The benchmark harness: records, medians, checks, and the printed table.

A record (one JSON file per run, under benchmarks/results/):

    benchmark, timestamp, quick, machine {cpu_model, cores, memory_gib, platform},
    versions {python, datawharf, git_commit, <library>: version},
    params {...},
    results [{case, metric, value, unit, repetitions, ...varying params such as n}],
    checks [{name, value, target, ok}]

Every value is the median of its repetitions, which are kept beside it.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LIBRARIES = ("phe", "gmpy2", "tenseal", "grpcio", "protobuf", "numpy", "pyarrow", "cryptography")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))
        mem = round(mem_kib / 2**20, 1)
    except (OSError, StopIteration):
        mem = None
    return {"cpu_model": cpu, "cores": os.cpu_count(), "memory_gib": mem, "platform": platform.platform()}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "git_commit": git_commit()}
    for lib in ("datawharf", *LIBRARIES):
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "absent"
    return out


def peak_rss_mib(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


class BenchmarkFailed(RuntimeError):
    """A benchmark computed a wrong answer; its figures must not be recorded as good."""


@dataclass
class Record:
    benchmark: str
    quick: bool
    params: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    # Taken when the run starts: the code measured is the code checked out then.
    versions: dict[str, str] = field(default_factory=versions)

    def add(self, case: str, metric: str, repetitions: list[float], unit: str, **extra: Any) -> float:
        value = statistics.median(repetitions)
        self.results.append({"case": case, "metric": metric, "value": value, "unit": unit,
                             "repetitions": repetitions, **extra})
        return value

    def get(self, case: str, metric: str) -> float | None:
        return next((r["value"] for r in self.results if r["case"] == case and r["metric"] == metric), None)

    def check(self, name: str, value: float | None, target: str, ok: Callable[[float], bool]) -> None:
        self.checks.append({"name": name, "value": value, "target": target,
                            "ok": None if value is None else bool(ok(value))})

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "timestamp": datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "quick": self.quick,
            "duration_s": round(time.time() - self.started, 1),
            "machine": machine(),
            "versions": self.versions,
            "params": self.params,
            "results": self.results,
            "checks": self.checks,
        }

    def write(self, extra_path: Path | None = None, results_dir: Path = RESULTS_DIR) -> Path:
        data = json.dumps(self.to_json(), indent=2)
        results_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = results_dir / f"{self.benchmark}{'-quick' if self.quick else ''}-{stamp}.json"
        path.write_text(data + "\n")
        if extra_path is not None:
            extra_path.parent.mkdir(parents=True, exist_ok=True)
            extra_path.write_text(data + "\n")
        return path

    def table(self) -> str:
        rows = [("case", "metric", "median", "unit", "runs")]
        for r in self.results:
            label = r["case"] + (f" n={r['n']}" if "n" in r else "")
            rows.append((label, r["metric"], _fmt(r["value"]), r["unit"], str(len(r["repetitions"]))))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        if self.checks:
            lines.append("")
            for c in self.checks:
                mark = {True: "PASS", False: "MISS", None: "n/a "}[c["ok"]]
                lines.append(f"{mark}  {c['name']}: {_fmt(c['value'])} (target {c['target']})")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.3f}"
    return str(v)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out
