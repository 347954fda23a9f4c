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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np

from datawharf import filters
from datawharf.filters import Condition, Op
from datawharf.pki import Role
from wharf.local import LocalExchange

HOSPITALS = ("st-mary", "riverside", "northgate")
# visits_private's declared range of cost: wide enough that clipping almost never bites.
PRIVATE_BOUNDS = (Decimal(-200), Decimal(20000))
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


WARDS = ("north", "south", "east", "west")


def generate_ward_load(path: Path, days: int, seed: int) -> None:
    """Ward-days with 24 hourly patient counts and 24 hourly energy readings (kWh)."""
    rng = np.random.default_rng(seed + 1000)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ward", "day", "hourly_patients", "hourly_kwh"])
        for day in range(days):
            for ward in WARDS:
                patients = rng.poisson(12, size=24)
                kwh = np.round(rng.gamma(4.0, 6.0, size=24), 2)
                w.writerow([ward, day, ";".join(str(int(x)) for x in patients), ";".join(f"{x:.2f}" for x in kwh)])


def party_config(
    name: str,
    gateway: str,
    source: Path,
    *,
    statistics: list[str],
    buyers: tuple[str, ...] = (BUYER,),
    min_rows: int = 10,
    ward_source: Path | None = None,
    dp: str | None = None,
    private_copy: bool = False,
    grants: bool = False,
) -> str:
    """A hospital's TOML. ``dp`` is the body of its [datasets.policy.dp] table; None writes the explicit
    opt-out (exact answers, for checking against the truth)."""
    stats = ", ".join(f'"{s}"' for s in statistics)
    dp_table = "[datasets.policy.dp]\n" + ("enabled = false" if dp is None else dp)
    allowed = ", ".join(f'"{b}"' for b in buyers)
    return f"""name = "{name}"
gateway = "{gateway}"

[[datasets]]
name = "visits"
source = "{source}"
description = "Outpatient visits, one row per visit"
columns = [
  {{ name = "patient_id", type = "string", join_key = true }},
  {{ name = "age", type = "int", psi_value = true, aggregate = true, bounds = [0, 120], filter = ["<", "<=", ">", ">="] }},
  {{ name = "cost", type = "decimal", decimals = 2, psi_value = true, aggregate = true, bounds = [-500, 5000], filter = ["<", "<=", ">", ">="] }},
  {{ name = "department", type = "string", categories = [{", ".join(f'"{d}"' for d in DEPARTMENTS)}], group = true, filter = ["==", "!="] }},
]

[datasets.policy]
allowed_buyers = [{allowed}]
allowed_statistics = [{stats}]
min_rows = {min_rows}
allowed_psi = ["intersection", "cardinality", "sum", "unbalanced"]
min_intersection = 10
grants = "{'required' if grants else 'optional'}"
{dp_table}
""" + ("" if not private_copy else f"""
[[datasets]]
name = "visits_private"
source = "{source}"
description = "The same visits under differential privacy"
columns = [
  {{ name = "patient_id", type = "string", join_key = true }},
  {{ name = "age", type = "int", aggregate = true, bounds = [0, 120], filter = ["<", "<=", ">", ">="] }},
  {{ name = "cost", type = "decimal", decimals = 2, aggregate = true, bounds = [{PRIVATE_BOUNDS[0]}, {PRIVATE_BOUNDS[1]}] }},
]
[datasets.policy]
allowed_buyers = [{allowed}]
min_rows = {min_rows}
grants = "required"
[datasets.policy.dp]
budget = 1.0
max_per_job = 0.25
""") + ("" if ward_source is None else f"""
[[datasets]]
name = "ward_load"
source = "{ward_source}"
description = "One row per ward and day: hourly patients and energy use"
columns = [
  {{ name = "ward", type = "string", categories = [{", ".join(f'"{w}"' for w in WARDS)}], group = true, filter = ["==", "!="] }},
  {{ name = "day", type = "int", filter = ["<", "<=", ">", ">=", "==", "!="] }},
  {{ name = "hourly_patients", type = "vector", length = 24, decimals = 0, aggregate = true, bounds = [0, 100] }},
  {{ name = "hourly_kwh", type = "vector", length = 24, decimals = 2, aggregate = true, bounds = [0, 200] }},
]

[datasets.policy]
allowed_buyers = [{allowed}]
min_rows = {min_rows}
{dp_table}
""")


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


def _stat(values: list[list[Fraction]], stat: str) -> list[Fraction | None]:
    """The statistic per vector element over rows (each row a list of elements)."""
    n = len(values)
    if stat in ("count", "histogram"):
        return [Fraction(n)]
    dim = len(values[0]) if values else 1
    out: list[Fraction | None] = []
    for i in range(dim):
        xs = [v[i] for v in values]
        total = sum(xs, Fraction(0))
        if stat == "sum":
            out.append(total)
        elif stat == "mean":
            out.append(total / n if n else None)
        else:
            mean = total / n if n else Fraction(0)
            out.append(sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (n - 1) if n > 1 else None)
    return out


def truth_groups(
    rows: list[dict[str, str]], column: str, stat: str, where: str = "",
    group_by: str = "", categories: tuple[str, ...] = (), bins: tuple[Decimal, ...] = (),
) -> list[list[Fraction | None]]:
    """The plaintext answer per group (one group when ungrouped), straight from the rows."""
    conds = filters.parse(where)
    picked = [r for r in rows if all(_matches(r, c) for c in conds)]

    def vec(r: dict[str, str]) -> list[Fraction]:
        return [Fraction(Decimal(x)) for x in r[column].split(";")] if stat not in ("count",) else []

    if group_by:
        return [_stat([vec(r) for r in picked if r[group_by].strip() == c], stat) for c in categories]
    if bins:
        return [
            _stat([vec(r) for r in picked if bins[i] <= Decimal(r[column]) < bins[i + 1]], stat)
            for i in range(len(bins) - 1)
        ]
    return [_stat([vec(r) for r in picked], stat)]


def truth(rows: list[dict[str, str]], column: str, stat: str, where: str) -> Fraction:
    """The plaintext answer of an ungrouped scalar job."""
    (group,) = truth_groups(rows, column, stat, where)
    assert group[0] is not None
    return group[0]


@dataclass(frozen=True)
class DemoJob:
    stat: str
    column: str
    where: str = ""
    dataset: str = "visits"
    group_by: str = ""
    bins: str = ""
    backend: str = "auto"

    @property
    def label(self) -> str:
        extra = f" where {self.where}" if self.where else ""
        extra += f" by {self.group_by}" if self.group_by else ""
        extra += f" bins {self.bins}" if self.bins else ""
        return f"{self.stat}({self.column}){extra}"


JOBS = (
    DemoJob("sum", "cost"),
    DemoJob("count", "patient_id", "age >= 65"),
    DemoJob("mean", "cost", "age >= 65"),
    DemoJob("mean", "age", "department == 'oncology' and cost > 1000"),
    DemoJob("variance", "cost", "department == 'cardiology'"),
    DemoJob("histogram", "age", bins="0,18,35,50,65,80,120"),
    DemoJob("sum", "cost", "age < 18", group_by="department"),
    DemoJob("sum", "hourly_patients", dataset="ward_load", backend="bfv"),
    DemoJob("mean", "hourly_kwh", "ward == 'north'", dataset="ward_load", backend="ckks"),
)


def _show(x: object) -> str:
    return f"{float(x):16.6f}" if x is not None else f"{'-':>16}"  # type: ignore[arg-type]


def run_job(job: DemoJob, address: str, tables: dict[str, list[dict[str, str]]], identity: Path) -> bool:
    """Run one job through the CLI and compare it with the plaintext truth."""
    args = ["job", "aggregate", "--gateway", address, "--identity", str(identity), "--dataset", job.dataset,
            "--column", job.column, "--stat", job.stat, "--backend", job.backend, "--json", "--timeout", "60"]
    for flag, value in (("--where", job.where), ("--group-by", job.group_by), ("--bins", job.bins)):
        if value:
            args += [flag, value]
    proc = subprocess.run([sys.executable, "-m", "wharf", *args], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        print(f"{job.label:<66} FAILED: {proc.stderr.strip() or proc.stdout.strip()}")
        return False
    out = json.loads(proc.stdout)
    rows = [r for name in out["contributors"] for r in tables[name]]
    categories = tuple(g["group"] for g in out["groups"]) if job.group_by else ()
    bins = tuple(Decimal(b) for b in job.bins.split(",")) if job.bins else ()
    expected = truth_groups(rows, job.column, job.stat, job.where, job.group_by, categories, bins)
    exact = out["precision"] == "exact"
    tolerance = 0.0 if exact else float(out["precision"]["max_abs_error"])
    ok = True
    worst = 0.0
    got_all = []
    for g, want in zip(out["groups"], expected):
        got = g["exact"] if exact else g["value"]
        got = got if isinstance(got, list) else [got]
        if g["suppressed_by"]:
            continue  # withheld by policy: the truth over all rows does not apply
        for a, b in zip(got, want):
            got_all.append(a)
            if exact:
                ok &= Fraction(a) == b
            else:
                worst = max(worst, abs(float(a) - float(b)))  # type: ignore[arg-type]
                ok &= worst <= tolerance
    many = len(out["groups"]) > 1 or len(got_all) > 1
    shown = f"{len(got_all)} values" if many else _show(Fraction(got_all[0]) if exact else got_all[0])
    want_shown = ("all equal" if exact else f"|Δ|≤{worst:.1e}") if many else _show(expected[0][0])
    backend = out["encryption"]["backend"]
    print(f"{job.label:<66} {backend:<16} {len(out['contributors']):>7} {shown:>16} {want_shown:>16}  "
          f"{'✓' if ok else '✗ MISMATCH'}")
    for t in out["tasks"]:
        if t["state"] != "CONTRIBUTED":
            print(f"    {t['party']} {t['state'].lower()}: {t['reason']}")
    for g in out["groups"]:
        if g["suppressed_by"]:
            print(f"    group {g['group']!r} withheld by {', '.join(g['suppressed_by'])} (fewer rows than their minimum)")
    return ok


PSI_HOLDER = "st-mary"


def write_customers(path: Path, visits: list[dict[str, str]], seed: int = 99) -> set[str]:
    """The buyer's own customer list: some of the holder's patients, written the way
    people write IDs (odd case, stray spaces), plus people the holder never saw."""
    rng = np.random.default_rng(seed)
    shared = [visits[int(i)]["patient_id"] for i in rng.choice(len(visits), size=len(visits) // 5, replace=False)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["customer_id"])
        for i, pid in enumerate(shared):
            w.writerow([f" {pid.lower()}" if i % 4 == 0 else pid])
        for i in range(len(shared)):
            w.writerow([f"AC-{i:06d}"])
    return set(shared)


def run_psi_jobs(address: str, work: Path, visits: list[dict[str, str]], identity: Path) -> int:
    """PSI, cardinality-only PSI, join-and-sum and unbalanced PSI, each beside the truth."""
    customers = work / "customers.csv"
    shared = write_customers(customers, visits)
    truth_sum = sum((Decimal(r["cost"]) for r in visits if r["patient_id"] in shared), Decimal(0))
    base = ["--gateway", address, "--identity", str(identity), "--ids", str(customers), "--id-column", "customer_id",
            "--dataset", "visits", "--party", PSI_HOLDER, "--json"]
    jobs = [
        ("psi", ["job", "psi", "--column", "patient_id", "--output", str(work / "matched.csv")]),
        ("psi --cardinality-only", ["job", "psi", "--column", "patient_id", "--cardinality-only"]),
        ("psi --unbalanced", ["job", "psi", "--column", "patient_id", "--unbalanced"]),
        ("psi-sum cost", ["job", "psi-sum", "--key-column", "patient_id", "--value-column", "cost"]),
    ]
    failures = 0
    print(f"{'PSI job against ' + PSI_HOLDER:<66} {'result':>34} {'plaintext truth':>16}  ok")
    for label, args in jobs:
        proc = subprocess.run([sys.executable, "-m", "wharf", *args, *base], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            print(f"{label:<66} FAILED: {proc.stderr.strip() or proc.stdout.strip()}")
            failures += 1
            continue
        out = json.loads(proc.stdout)
        ok = out["intersection_size"] == len(shared)
        if label.startswith("psi-sum"):
            ok &= Decimal(out["sums"]["cost"]) == truth_sum
            got, want = f"size {out['intersection_size']}, sum {out['sums']['cost']}", f"{truth_sum}"
        else:
            got, want = f"size {out['intersection_size']}", f"{len(shared)}"
        if label == "psi":
            matched = {row["customer_id"].strip().upper() for row in read_rows(work / "matched.csv")}
            ok &= matched == shared
        print(f"{label:<66} {got:>34} {want:>16}  {'✓' if ok else '✗ MISMATCH'}")
        failures += not ok
    return failures


def run_private_jobs(address: str, visits: list[dict[str, str]], identity: Path) -> int:
    """The same sum under differential privacy, beside the truth; then the differencing attack, refused."""
    truth_sum = float(truth(visits, "cost", "sum", ""))
    lo, hi = PRIVATE_BOUNDS
    # What the holders' noisy sum estimates: each value clipped to the declared bounds.
    clipped = float(sum(min(max(Decimal(r["cost"]), lo), hi) for r in visits))
    base = [sys.executable, "-m", "wharf", "job", "aggregate", "--gateway", address, "--identity", str(identity),
            "--dataset", "visits_private", "--column", "cost", "--stat", "sum", "--json", "--timeout", "60"]
    failures = 0
    proc = subprocess.run([*base, "--rho", "0.1"], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        print(f"{'sum(cost) with --rho 0.1':<66} FAILED: {proc.stderr.strip() or proc.stdout.strip()}")
        return 1
    out = json.loads(proc.stdout)
    low, high = out["interval95"]
    inside = low <= clipped <= high
    # The noise is real: pass while the truth is within 4 sd (a 1-in-16,000 miss), say whether the 95 % interval holds it.
    ok = abs(out["value"] - clipped) <= 4 * out["noise_sd"]
    print(f"{'sum(cost) with --rho 0.1 (each holder adds its own noise)':<66} {out['value']:>16.2f} "
          f"{truth_sum:>16.2f}  {'✓' if ok else '✗ MISMATCH'}")
    print(f"    noise sd {out['noise_sd']:.2f}, 95% interval [{low:.2f}, {high:.2f}] "
          f"{'holds' if inside else 'misses'} the truth"
          + (f" (clipped to [{lo}, {hi}]: {clipped:.2f})" if clipped != truth_sum else "") + "; budget left: "
          + ", ".join(f"{h} {r:g}" for h, r in sorted(out["privacy"]["remaining_rho"].items())))
    failures += not ok
    victim = visits[7]["patient_id"]
    proc = subprocess.run([*base, "--where", f"patient_id != '{victim}'"], capture_output=True, text=True, timeout=180)
    refused = proc.returncode != 0 and "does not allow filtering on 'patient_id'" in proc.stderr
    print(f"{'sum(cost) where patient_id != ' + repr(victim) + ' (differencing)':<66} {'refused':>16} "
          f"{'':>16}  {'✓' if refused else '✗ NOT REFUSED'}")
    print(f"    {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.stdout.strip()[:200]}")
    return failures + (not refused)


PRICES = {"st-mary": "20.00", "riverside": "15.00", "northgate": "12.50"}  # CNY per job, per holder


def _wharf(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "wharf", *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"wharf {' '.join(map(str, args[:3]))} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def open_market(exchange: LocalExchange, address: str, operator: Path) -> None:
    """Each hospital lists its datasets (schema, roles and price; never rows); the operator approves."""
    for name in HOSPITALS:
        config = exchange.root / f"{name}.toml"
        for dataset, title in (("visits", "Outpatient visits"), ("visits_private", "Visits, differentially private"),
                               ("ward_load", "Ward load by hour")):
            _wharf("listing", "submit", "--config", config, "--dataset", dataset, "--title", f"{name}: {title}",
                   "--classification", "sensitive", "--personal-data", "yes" if dataset != "ward_load" else "no",
                   "--price-per-job", PRICES[name], "--currency", "CNY")
    pending = json.loads(_wharf("listing", "list", "--state", "pending", "-g", address, "-i", operator,
                                "--json").stdout)["listings"]
    for x in pending:
        _wharf("listing", "approve", x["listing_id"], "--note", "schema and roles reviewed", "-g", address,
               "-i", operator)
    print(f"  the market: {len(pending)} listings submitted by the hospitals (price per job "
          + ", ".join(f"{n} {p} CNY" for n, p in PRICES.items()) + "), each approved by the operator")


def grant_private(exchange: LocalExchange, address: str, buyer: Path) -> None:
    """visits_private needs a grant: the buyer asks, every hospital signs its approval."""
    until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * 86400))
    made = json.loads(_wharf("grant", "request", "--dataset", "visits_private", "--purpose", "demo: cost of care",
                             "--statistics", "sum,mean", "--until", until, "--max-jobs", "5", "-g", address,
                             "-i", buyer, "--json").stdout)["grants"]
    for g in made:
        _wharf("grant", "approve", g["id"], "--config", exchange.root / f"{g['party']}.toml")
    print(f"  {BUYER} asked for a grant on visits_private (sum, mean; 5 jobs until {until}); "
          f"{', '.join(sorted(g['party'] for g in made))} signed it")


def statements(exchange: LocalExchange, address: str, operator: Path) -> int:
    """Each hospital's statement, and the buyer's: lines that add up to the same total."""
    paid = Decimal(0)
    for name in HOSPITALS:
        out = json.loads(_wharf("billing", "statement", "--config", exchange.root / f"{name}.toml",
                                "--json").stdout)
        total = sum((Decimal(line["amount"]) for line in out["lines"]), Decimal(0))
        paid += total
        print(f"  {name:<10} {len(out['lines']):>3} paid jobs  {total:>9} CNY")
    bill = json.loads(_wharf("billing", "statement", "--buyer", BUYER, "-g", address, "-i", operator,
                             "--json").stdout)
    billed = sum((Decimal(line["amount"]) for line in bill["lines"]), Decimal(0))
    ok = billed == paid
    print(f"  {BUYER} billed {billed} CNY over {len(bill['lines'])} lines: "
          f"{'equal to what the hospitals are paid ✓' if ok else '✗ MISMATCH with ' + str(paid)}")
    return 0 if ok else 1


def audit(exchange: LocalExchange, work: Path) -> int:
    """Export the gateway's ledger and verify it with the exchange's CA, as an auditor would."""
    assert exchange.ca is not None
    out = work / "ledger.jsonl"
    # Each hospital's own receipts are its witness: the ledger must agree with every one.
    receipts = [a for name in exchange.parties for a in ("--receipts", str(work / f".wharf-state-{name}"))]
    steps = [["audit", "export", "--data-dir", str(exchange.gateway_dir), "--out", str(out)],
             ["audit", "verify", str(out), "--ca", str(exchange.ca.dir / "ca.pem"), *receipts]]
    for args in steps:
        proc = subprocess.run([sys.executable, "-m", "wharf", *args], capture_output=True, text=True, timeout=120)
        print("  " + (proc.stdout.strip() or proc.stderr.strip()).replace("\n", "\n  "))
        if proc.returncode != 0:
            return 1
    return 0


def run_demo(*, workdir: Path | None = None, rows: int = 3000) -> int:
    started = time.monotonic()
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="wharf-demo-")
        work = Path(tmp.name)
    else:
        work = workdir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    print(f"DataWharf demo in {work}")
    sources = {}
    wards = {}
    for i, name in enumerate(HOSPITALS):
        sources[name] = work / f"{name}.csv"
        generate_visits(sources[name], name[:2].upper(), rows, seed=11 + i)
        wards[name] = work / f"{name}-wards.csv"
        generate_ward_load(wards[name], days=60, seed=11 + i)
    print(f"  generated {rows} visits and 60 days of ward load at each of {', '.join(HOSPITALS)}")

    exchange = LocalExchange(work, review=True)
    failures = 0
    try:
        buyer = exchange.identity(BUYER)
        operator = exchange.identity("exchange-ops", Role.OPERATOR)
        print(f"  exchange CA in {work / 'ca'}: certificates for the gateway, each hospital and {BUYER}")
        address = exchange.start_gateway()
        print(f"  gateway on {address} (mutual TLS; every job signed by its buyer and checked by each holder)")
        for name in HOSPITALS:
            # Northgate's policy does not release variances: its refusal shows in the results.
            stats = ["sum", "count", "mean", "histogram"]
            if name != "northgate":
                stats.append("variance")
            exchange.start_party(name, party_config(name, address, sources[name], statistics=stats,
                                                    ward_source=wards[name], private_copy=True))
        open_market(exchange, address, operator)
        exchange.wait_online("visits", HOSPITALS, caller=BUYER)
        print(f"  party nodes online: {', '.join(HOSPITALS)}")
        grant_private(exchange, address, buyer)
        print()
        tables = {"visits": {n: read_rows(src) for n, src in sources.items()},
                  "ward_load": {n: read_rows(src) for n, src in wards.items()}}
        header = f"{'job':<66} {'backend':<16} {'holders':>7} {'DataWharf':>16} {'plaintext truth':>16}  ok"
        print(header)
        print("-" * len(header))
        for job in JOBS:
            failures += not run_job(job, address, tables[job.dataset], buyer)
        print()
        failures += run_psi_jobs(address, work, tables["visits"][PSI_HOLDER], buyer)
        print()
        print("differential privacy (the same visits, listed again with [datasets.policy.dp]):")
        failures += run_private_jobs(address, [r for t in tables["visits"].values() for r in t], buyer)
        print()
        print("statements (`wharf billing statement`): every DONE job charged, refused and failed ones free")
        failures += statements(exchange, address, operator)
        print()
        print("the ledger of every use (`wharf audit export`, then `wharf audit verify --ca`):")
        failures += audit(exchange, work)
        print()
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        failures += 1
    finally:
        exchange.stop()
    elapsed = time.monotonic() - started
    verdict = "all results match the plaintext truth" if not failures else f"{failures} problem(s)"
    print(f"demo finished in {elapsed:.1f} s: {verdict}")
    if workdir is None:
        tmp.cleanup()
    return 0 if failures == 0 else 1
