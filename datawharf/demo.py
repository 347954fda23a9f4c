"""`wharf demo`: a whole exchange on one machine, checked against the truth.

Three hospitals' visit records are generated (fixed seed), a gateway and
three party nodes start as separate processes on free loopback ports, and a
buyer runs jobs through the real CLI. Each result is printed beside the
plaintext truth computed straight from the generated files; any mismatch
makes the demo exit non-zero.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from datawharf import filters
from datawharf.filters import Condition, Op

HOSPITALS = ("st-mary", "riverside", "northgate")
DEPARTMENTS = ("cardiology", "oncology", "pediatrics", "emergency", "orthopedics")
BUYER = "acme-insurance"


def generate_visits(path: Path, prefix: str, rows: int, seed: int) -> None:
    """Visit records with a few negative cost adjustments (refunds, corrections)."""
    rng = np.random.default_rng(seed)
    ages = rng.integers(0, 100, size=rows)
    cents = np.round(rng.lognormal(mean=6.2, sigma=0.9, size=rows) * 100).astype(np.int64)
    refunds = rng.random(rows) < 0.03
    cents[refunds] = -rng.integers(500, 20000, size=int(refunds.sum()))
    depts = rng.choice(DEPARTMENTS, size=rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "age", "cost", "department"])
        for i in range(rows):
            c = int(cents[i])
            sign = "-" if c < 0 else ""
            w.writerow([f"{prefix}-{seed:02d}{i:06d}", int(ages[i]), f"{sign}{abs(c) // 100}.{abs(c) % 100:02d}", depts[i]])


def party_config(
    name: str,
    gateway: str,
    source: Path,
    *,
    statistics: list[str],
    buyers: tuple[str, ...] = (BUYER,),
    min_rows: int = 10,
) -> str:
    stats = ", ".join(f'"{s}"' for s in statistics)
    allowed = ", ".join(f'"{b}"' for b in buyers)
    return f"""name = "{name}"
gateway = "{gateway}"

[[datasets]]
name = "visits"
source = "{source}"
description = "Outpatient visits, one row per visit"
columns = [
  {{ name = "patient_id", type = "string" }},
  {{ name = "age", type = "int" }},
  {{ name = "cost", type = "decimal", decimals = 2 }},
  {{ name = "department", type = "string" }},
]

[datasets.policy]
allowed_buyers = [{allowed}]
allowed_statistics = [{stats}]
min_rows = {min_rows}
"""


# --------------------------------------------------------------- the truth
def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _matches(row: dict[str, str], cond: Condition) -> bool:
    raw = row[cond.column].strip()
    left: object = raw if isinstance(cond.literal, str) else Decimal(raw)
    right: object = cond.literal
    return {
        Op.EQ: left == right, Op.NE: left != right,
        Op.LT: left < right, Op.LE: left <= right,  # type: ignore[operator]
        Op.GT: left > right, Op.GE: left >= right,  # type: ignore[operator]
    }[cond.op]


def truth(rows: list[dict[str, str]], column: str, stat: str, where: str) -> Fraction:
    conds = filters.parse(where)
    picked = [r for r in rows if all(_matches(r, c) for c in conds)]
    if stat == "count":
        return Fraction(len(picked))
    xs = [Fraction(Decimal(r[column])) for r in picked]
    n = len(xs)
    if stat == "sum":
        return sum(xs, Fraction(0))
    mean = sum(xs, Fraction(0)) / n
    if stat == "mean":
        return mean
    return sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (n - 1)


@dataclass(frozen=True)
class DemoJob:
    stat: str
    column: str
    where: str = ""


JOBS = (
    DemoJob("sum", "cost"),
    DemoJob("count", "patient_id", "age >= 65"),
    DemoJob("mean", "cost", "age >= 65"),
    DemoJob("mean", "age", "department == 'oncology' and cost > 1000"),
    DemoJob("variance", "cost", "department == 'cardiology'"),
    DemoJob("sum", "cost", "department == 'pediatrics' and age < 18"),
)


# --------------------------------------------------------------- processes
class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "datawharf", *args], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time; killing it", file=sys.stderr)
                p.kill()
                p.wait()


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def run_demo(*, workdir: Path | None = None, rows: int = 3000) -> int:
    started = time.monotonic()
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="wharf-demo-")
        work = Path(tmp.name)
    else:
        work = workdir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    print(f"DataWharf demo in {work}")
    sources = {}
    for i, name in enumerate(HOSPITALS):
        sources[name] = work / f"{name}.csv"
        generate_visits(sources[name], name[:2].upper(), rows, seed=11 + i)
    print(f"  generated {rows} visits at each of {', '.join(HOSPITALS)}")

    procs = Processes(logs)

    def alive() -> None:
        for name, p in procs.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}; see {logs / (name + '.log')}")

    failures = 0
    try:
        gw_dir = work / "gateway"
        ready = gw_dir / "gateway.json"
        ready.unlink(missing_ok=True)
        procs.start("gateway", "gateway", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(gw_dir))
        wait_for("the gateway", ready.exists, 30, alive)
        address = json.loads(ready.read_text())["address"]
        print(f"  gateway on {address}")
        for name in HOSPITALS:
            # Northgate's policy does not release variances: its refusal shows in the results.
            stats = ["sum", "count", "mean"] if name == "northgate" else ["sum", "count", "mean", "variance"]
            cfg = work / f"{name}.toml"
            cfg.write_text(party_config(name, address, sources[name], statistics=stats))
            procs.start(name, "party", "serve", "--config", str(cfg))

        from gateway.client import Client

        with Client(address, caller=BUYER) as client:
            def all_online() -> bool:
                items = {c.dataset: c for c in client.catalog()}
                return "visits" in items and len(items["visits"].holders_online) == len(HOSPITALS)

            wait_for("three party nodes", all_online, 60, alive)
        print(f"  party nodes online: {', '.join(HOSPITALS)}")
        print()
        tables = {name: read_rows(src) for name, src in sources.items()}
        header = f"{'job':<62} {'holders':>7} {'DataWharf':>18} {'plaintext truth':>18}  ok"
        print(header)
        print("-" * len(header))
        for job in JOBS:
            args = ["job", "aggregate", "--gateway", address, "--as", BUYER, "--dataset", "visits",
                    "--column", job.column, "--stat", job.stat, "--json", "--timeout", "60"]
            if job.where:
                args += ["--where", job.where]
            proc = subprocess.run([sys.executable, "-m", "datawharf", *args], capture_output=True, text=True, timeout=180)
            label = f"{job.stat}({job.column})" + (f" where {job.where}" if job.where else "")
            if proc.returncode != 0:
                print(f"{label:<62} FAILED: {proc.stderr.strip() or proc.stdout.strip()}")
                failures += 1
                continue
            out = json.loads(proc.stdout)
            contributors = out["contributors"]
            rows_used = [r for name in contributors for r in tables[name]]
            expected = truth(rows_used, job.column, job.stat, job.where)
            got = Fraction(out["exact"])
            ok = got == expected
            failures += not ok
            print(f"{label:<62} {len(contributors):>7} {float(got):>18.6f} {float(expected):>18.6f}  {'✓' if ok else '✗ MISMATCH'}")
            for t in out["tasks"]:
                if t["state"] != "CONTRIBUTED":
                    print(f"    {t['party']} {t['state'].lower()}: {t['reason']}")
        print()
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        failures += 1
    finally:
        procs.stop()
    elapsed = time.monotonic() - started
    verdict = "all results match the plaintext truth" if not failures else f"{failures} problem(s)"
    print(f"demo finished in {elapsed:.1f} s: {verdict}")
    if workdir is None:
        tmp.cleanup()
    return 0 if failures == 0 else 1
