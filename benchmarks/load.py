"""Benchmark `load`: B concurrent buyers × H holders on loopback for a fixed duration.

Every process is real: one gateway and H party nodes started by the launcher
(wharf/local.py), mutual TLS, each buyer with its own certificate, signed
jobs and receipts, the gateway's default per-buyer quotas. The buyers run as
threads in a few buyer processes; each loops until the duration is up,
picking a job by a fixed mix:

    single   a count or a sum (one figure) over every holder, with or without a filter
    vector   a histogram of 4 bins, or a sum grouped by 4 regions, over every holder
    psi      an intersection of 256 IDs (half of them the holder's) with one holder

Every answer is checked against the plaintext truth computed here from the
holders' data: differential privacy is off in the holders' policy
(``enabled = false``), so answers must be exact. An exception or a wrong
answer is an error; any error fails the benchmark.

Cases, per gateway configuration (``@sqlite-1gw``; ``--store URL --replicas N``
adds a second configuration to the same run):

    KIND@CONF        per kind and over all kinds: jobs (count), jobs_per_s over
                     the measured window, p50_seconds and p99_seconds of latency
                     (submission to checked answer), errors
    one-buyer@CONF   the baseline: one buyer running single-figure jobs one after
                     another on the same exchange before the load

Checks: errors = 0; single-figure jobs/s >= 10 and their p99 < 5 s (the
target on a 2-core machine); the load's jobs/s (every kind) over one
buyer's. With ``--profile`` each configuration's record (``stores``) also
says where the time goes: every job's latency split into stages from the
buyer's clock and the gateway store's own timings (jobs.created_at,
tasks.dispatched_at / answered_at, jobs.finished_at), and the CPU seconds
the gateway, the holders and the buyers used during the window.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import BenchmarkFailed, Record
from buyers.client import Client
from gateway.store.base import display_url
from wharf import pgcluster
from wharf.local import LocalExchange, check_gateways

SQLITE = "sqlite"  # the gateway's own store file under its data directory
THROWAWAY = "postgresql"  # the second configuration's store: a PostgreSQL server started for the run
DATASET = "load"
REGIONS = ("north", "south", "east", "west")
BINS = (0, 250, 500, 750, 1000)
PSI_IDS = 256
MIX = (("single", 0.7), ("vector", 0.2), ("psi", 0.1))
# Each kind's jobs, picked in turn at random: (statistic, column, where, group_by, bins).
SINGLE = (("count", "value", "", "", ""), ("sum", "value", "", "", ""),
          ("count", "value", "value >= 500", "", ""), ("sum", "value", "value < 250", "", ""))
VECTOR = (("histogram", "value", "", "", ",".join(map(str, BINS))), ("sum", "value", "", "region", ""))
TARGET_JOBS_PER_S, TARGET_P99_S = 10.0, 5.0
STAGES = ("keygen_sign", "submit_rpc", "queue", "holders", "gateway_finish", "to_buyer", "fetch_decrypt")


# ------------------------------------------------------------------ configurations
@dataclass(frozen=True)
class Setup:
    """One gateway configuration: its store (``sqlite`` or a database URL) and how many replicas."""

    store: str = SQLITE
    replicas: int = 1

    @property
    def name(self) -> str:
        kind = SQLITE if self.store == SQLITE else self.store.partition(":")[0]
        return f"{kind}-{self.replicas}gw"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "store": display_url(self.store), "replicas": self.replicas}

    def check(self) -> None:
        """Raise BenchmarkFailed at once if the launcher cannot start this configuration."""
        try:
            check_gateways(self.store, self.replicas)
        except ValueError as exc:
            raise BenchmarkFailed(f"{self.name}: {exc}") from None

    def exchange(self, root: Path) -> LocalExchange:
        return LocalExchange(root, log_level="warning", store=self.store, replicas=self.replicas)


# ------------------------------------------------------------------ data and truth
def holder_ids(i: int, rows: int) -> list[str]:
    return [f"h{i}-{j:06d}" for j in range(rows)]


def holder_table(i: int, rows: int) -> dict[str, list[Any]]:
    rng = np.random.default_rng(4200 + i)
    return {"id": holder_ids(i, rows),
            "value": rng.integers(0, 1000, rows).tolist(),
            "region": [REGIONS[k] for k in rng.integers(0, len(REGIONS), rows)]}


def write_holder(root: Path, i: int, rows: int, gateway: str) -> str:
    pq.write_table(pa.table(holder_table(i, rows)), root / f"load-{i}.parquet")
    regions = ", ".join(f'"{r}"' for r in REGIONS)
    return f"""name = "holder-{i:02d}"
gateway = "{gateway}"

[[datasets]]
name = "{DATASET}"
source = "load-{i}.parquet"
columns = [
  {{ name = "id", type = "string", join_key = true }},
  {{ name = "value", type = "int", aggregate = true, bounds = [0, 1000], filter = ["<", ">="] }},
  {{ name = "region", type = "string", categories = [{regions}], group = true }},
]
[datasets.policy]
allowed_buyers = ["*"]
min_rows = 1
allowed_psi = ["intersection"]
psi_jobs_per_period = 1000000   # a load test runs many PSI jobs; the holder's quotas are tested elsewhere
[datasets.policy.dp]
enabled = false   # answers are checked exactly against the truth; benchmarks/dp.py measures the noise
"""


def truth(holders: int, rows: int) -> dict[tuple[str, ...], tuple[int, ...]]:
    """The exact answer of every aggregate job of the mix, one value per group."""
    tables = [holder_table(i, rows) for i in range(holders)]
    value = np.concatenate([np.array(t["value"]) for t in tables])
    region = np.concatenate([np.array(t["region"]) for t in tables])
    out: dict[tuple[str, ...], tuple[int, ...]] = {}
    for job in SINGLE + VECTOR:
        stat, _, where, group_by, bins = job
        keep = np.ones(len(value), bool)
        if where:
            _, op, lit = where.split()
            keep = value >= int(lit) if op == ">=" else value < int(lit)
        v, r = value[keep], region[keep]
        if bins:
            out[job] = tuple(int(np.sum((v >= a) & (v < b))) for a, b in pairwise(BINS))
        elif group_by:
            out[job] = tuple(int(v[r == g].sum()) for g in REGIONS)
        else:
            out[job] = (len(v) if stat == "count" else int(v.sum()),)
    return out


# ------------------------------------------------------------------ the buyers
@dataclass(frozen=True)
class Sample:
    """One job as a buyer saw it; times are wall-clock (time.time) to compare with the gateway's store."""

    kind: str
    job: str
    job_id: str
    t0: float          # before submitting
    t_done: float      # the buyer saw the job final (aggregates; = t_end for PSI)
    t_end: float       # the answer decrypted and checked
    error: str = ""
    local_s: float = 0.0  # aggregates: the buyer's own work in submit (key generation, proof, signing)

    @property
    def latency(self) -> float:
        return self.t_end - self.t0


@dataclass(frozen=True)
class BuyerSpec:
    """What one buyer process (or thread group) runs."""

    address: str
    buyers: tuple[tuple[str, str], ...]  # (name, certificate directory)
    duration_s: float
    holders: int
    rows: int
    mix: tuple[tuple[str, float], ...]
    backend: str
    expected: dict[tuple[str, ...], tuple[int, ...]]
    seed: int
    cover: bool = False  # buyer i's first job is kind i of the mix, so a short run sees every kind
    key_reuse_s: float = 0.0  # Client(key_reuse_s=...): 0, a fresh Paillier key per job


def _check(job: tuple[str, ...], got: Sequence[Any], want: tuple[int, ...], bound: float) -> str:
    if len(got) != len(want) or any(abs(Fraction(g) - w) > bound for g, w in zip(got, want)):
        return f"wrong answer to {job}: {[float(g) for g in got]} != {list(want)}"
    return ""


def _one(client: Client, spec: BuyerSpec, kind: str, rng: random.Random) -> Sample:
    t0 = time.time()
    job_id, label, t_done, local_s = "", kind, 0.0, 0.0
    try:
        if kind == "psi":
            holder = rng.randrange(spec.holders)
            mine = rng.sample(holder_ids(holder, spec.rows), min(PSI_IDS // 2, spec.rows))
            ids = mine + [f"x-{rng.getrandbits(64):016x}" for _ in range(PSI_IDS - len(mine))]
            rng.shuffle(ids)
            label = f"psi {len(ids)} ids with holder-{holder:02d}"
            found = client.psi(DATASET, "id", ids, party=f"holder-{holder:02d}", parallel=False, timeout_s=120)
            job_id, t_done = found.job_id, time.time()
            error = "" if set(found.matched) == set(mine) and found.size == len(mine) else (
                f"wrong answer to {label}: {found.size} matched, want {len(mine)}")
        else:
            job = rng.choice(SINGLE if kind == "single" else VECTOR)
            stat, column, where, group_by, bins = job
            label = f"{stat}({column})" + (f" where {where}" if where else "") + (
                f" by {group_by}" if group_by else "") + (f" bins {bins}" if bins else "")
            client.rpc_s = 0.0  # type: ignore[attr-defined]
            submitted = client.submit(DATASET, column, stat, where=where or None, group_by=group_by or None,
                                      bins=bins or None, backend=spec.backend, timeout_s=120)
            local_s = time.time() - t0 - client.rpc_s  # type: ignore[attr-defined]
            job_id = submitted.job_id
            client.wait(submitted, timeout_s=120)
            t_done = time.time()
            answer = client.result(submitted, wait=False)
            if len(answer.contributors) != spec.holders:
                error = f"{label}: only {len(answer.contributors)} of {spec.holders} holders contributed"
            else:
                got = [g.values[0] for g in answer.groups]
                error = _check(job, got, spec.expected[job], 0 if answer.exact_backend else answer.max_abs_error)
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported, none stops the run
        error = f"{label}: {type(exc).__name__}: {exc}"[:400]
    t_end = time.time()
    return Sample(kind, label, job_id, t0, t_done or t_end, t_end, error, local_s)


def _timed(client: Client) -> Client:
    """Count the seconds the client spends in unary calls (``rpc_s``), to tell its own work from waiting."""
    call = client.call

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            client.rpc_s += time.perf_counter() - t  # type: ignore[attr-defined]

    client.rpc_s = 0.0  # type: ignore[attr-defined]
    client.call = timed  # type: ignore[method-assign]
    return client


def _buyer(client: Client, spec: BuyerSpec, index: int, stop_at: float) -> list[Sample]:
    rng = random.Random(spec.seed * 1000 + index)
    kinds, weights = zip(*spec.mix)
    out: list[Sample] = []
    while time.time() < stop_at:
        kind = kinds[index % len(kinds)] if spec.cover and not out else rng.choices(kinds, weights)[0]
        out.append(_one(client, spec, kind, rng))
    return out


def buyers_main(spec: BuyerSpec, ready: Any, go: Any, results: Any) -> None:
    """Connect every buyer, say ready, wait for ``go``, run for the duration; put (samples, cpu_s).

    Runs in a buyer process (multiprocessing queue and event) or a thread (queue.Queue, threading.Event)."""
    try:
        clients = [_timed(Client(spec.address, ident, key_reuse_s=spec.key_reuse_s)) for _, ident in spec.buyers]
        for c in clients:
            c.catalog()  # the TLS handshake happens before the clock starts
        if spec.key_reuse_s > 0:
            # Steady state with reused keys: each buyer's key is made and checked by every holder
            # once, before the clock starts (one single-figure job each, not measured).
            warm = random.Random(spec.seed)
            with ThreadPoolExecutor(len(clients)) as pool:
                list(pool.map(lambda c: _one(c, spec, "single", random.Random(warm.random())), clients))
        ready.put(len(clients))
        go.wait()
        cpu0, stop_at = time.process_time(), time.time() + spec.duration_s
        with ThreadPoolExecutor(len(clients)) as pool:
            runs = list(pool.map(lambda ic: _buyer(ic[1], spec, ic[0], stop_at), enumerate(clients)))
        for c in clients:
            c.close()
        results.put(([s for run in runs for s in run], time.process_time() - cpu0))
    except BaseException as exc:
        ready.put(0)
        results.put(([], f"{type(exc).__name__}: {exc}"))
        raise


def run_buyers(specs: list[BuyerSpec], *, processes: bool, on_go: Any = None) -> tuple[list[Sample], float, float]:
    """Run each spec in its own process (or thread); (samples, the window's start, buyers' CPU seconds).

    The clock starts when every buyer is connected; ``on_go()`` is called just before."""
    if processes:
        ctx = multiprocessing.get_context("spawn")
        ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        workers: list[Any] = [ctx.Process(target=buyers_main, args=(s, ready, go, results), daemon=True)
                              for s in specs]
    else:
        ready, results, go = queue.Queue(), queue.Queue(), threading.Event()  # type: ignore[assignment]
        workers = [threading.Thread(target=buyers_main, args=(s, ready, go, results), daemon=True) for s in specs]
    for w in workers:
        w.start()
    try:
        if not all(ready.get(timeout=300) for _ in specs):  # with --key-reuse, after a warm-up job each
            raise BenchmarkFailed("a buyer process could not connect: " + str(results.get(timeout=10)[1]))
        if on_go is not None:
            on_go()
        start = time.time()
        go.set()
        samples: list[Sample] = []
        cpu = 0.0
        wait_s = max(s.duration_s for s in specs) + 300
        for _ in specs:
            got, used = results.get(timeout=wait_s)
            if isinstance(used, str):
                raise BenchmarkFailed(f"a buyer process failed: {used}")
            samples += got
            cpu += used
    finally:
        for w in workers:
            w.join(timeout=10)
    return samples, start, cpu


# ------------------------------------------------------------------ figures
def summarise(samples: list[Sample], start: float) -> tuple[float, dict[str, dict[str, Any]]]:
    """The measured window (start to the last answer) and per kind: jobs, jobs/s, p50, p99, errors."""
    window = max((s.t_end for s in samples), default=start) - start
    out = {}
    for kind in [k for k, _ in MIX] + ["all"]:
        mine = [s for s in samples if kind in ("all", s.kind)]
        good = sorted(s.latency for s in mine if not s.error)
        out[kind] = {"jobs": len(good), "errors": len(mine) - len(good),
                     "jobs_per_s": len(good) / window if window > 0 else 0.0,
                     "p50_seconds": statistics.median(good) if good else None,
                     "p99_seconds": float(np.percentile(good, 99)) if good else None}
    return window, out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat: what every process used,
    the other engineers' too."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def crypto_costs(backend: str, holders: int, reps: int = 3) -> dict[str, Any]:
    """What one single-figure job's own cryptography costs, in this process (median seconds of ``reps``):
    the buyer's key generation (with a Paillier key's modulus proof) and each holder's check of the key
    and encryption of its figure. The floor under the holders and keygen_sign stages."""
    from protocols.aggregate import Buyer, Holder, choose_backend
    from protocols.figures import Layout, Statistic
    from protocols.schemes import Backend, paillier

    layout = Layout(Statistic.SUM, 1, 1)
    chosen = choose_backend(Statistic.SUM, layout, real_valued=False) if backend == "auto" else Backend(backend)
    keygen, verify, encrypt = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        buyer = Buyer(layout, 0, chosen, holders)
        t1 = time.perf_counter()
        paillier.verify_public_key(buyer.request.params)  # a no-op for other backends
        t2 = time.perf_counter()
        Holder(buyer.request).contribute([1])
        t3 = time.perf_counter()
        keygen.append(t1 - t0)
        verify.append(t2 - t1)
        encrypt.append(t3 - t2)
    return {"backend": chosen.value, "buyer_keygen_s": statistics.median(keygen),
            "holder_key_check_s": statistics.median(verify), "holder_encrypt_s": statistics.median(encrypt)}


_JOB_TIMES = "SELECT job_id, created_at, finished_at FROM jobs"
_TASK_TIMES = ("SELECT job_id, MIN(NULLIF(dispatched_at, 0)), MAX(NULLIF(answered_at, 0)) FROM tasks "
               "GROUP BY job_id")


def store_times(setup: Setup, gateway_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gateway store's job and task timings: {job_id: (created, finished)}, {job_id: (dispatched, answered)}."""
    if setup.store == SQLITE:
        db = sqlite3.connect(f"file:{gateway_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
        try:
            return ({r[0]: r[1:] for r in db.execute(_JOB_TIMES)}, {r[0]: r[1:] for r in db.execute(_TASK_TIMES)})
        finally:
            db.close()
    import psycopg

    with psycopg.connect(setup.store) as conn:
        return ({r[0]: r[1:] for r in conn.execute(_JOB_TIMES)}, {r[0]: r[1:] for r in conn.execute(_TASK_TIMES)})


def stage_times(jobs: dict[str, Any], tasks: dict[str, Any],
                samples: list[Sample]) -> dict[str, dict[str, dict[str, float]]]:
    """Each kind's latency split into stages, from the buyer's clock and the gateway store's timings:

        keygen_sign     the buyer's own work in submitting: key generation (and a Paillier key's
                        modulus proof), the job's signature
        submit_rpc      the rest of submitting: the catalog and SubmitJob calls until the job row is
                        created (waiting for the gateway)
        queue           job created → its first task dispatched to a holder
        holders         first task dispatched → last holder's answer received
        gateway_finish  last answer → the job DONE (combine, result stored, ledger)
        to_buyer        job DONE → the buyer sees it final (the watch stream)
        fetch_decrypt   fetching the result, checking receipts, decrypting, checking the answer

    A PSI job's blinding before it is submitted falls in submit_rpc (its keygen_sign is 0).
    A PSI job has later rounds (the buyer re-blinds, the gateway matches) after its holder
    answers: they fall in gateway_finish and to_buyer, and its fetch_decrypt is 0.

    Per stage: p50 and mean seconds, and its share of the mean latency."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for kind in [k for k, _ in MIX]:
        parts: dict[str, list[float]] = {s: [] for s in STAGES}
        for s in samples:
            if s.kind != kind or s.error or s.job_id not in jobs or s.job_id not in tasks:
                continue
            created, finished = jobs[s.job_id]
            dispatched, answered = tasks[s.job_id]
            if not (dispatched and answered and finished):
                continue
            for name, span in zip(STAGES, (s.local_s, created - s.t0 - s.local_s, dispatched - created, answered - dispatched,
                                           finished - answered, s.t_done - finished, s.t_end - s.t_done)):
                parts[name].append(span)
        n = len(parts["queue"])
        if not n:
            continue
        total = sum(statistics.fmean(v) for v in parts.values())
        out[kind] = {name: {"p50": statistics.median(v), "mean": statistics.fmean(v),
                            "share": statistics.fmean(v) / total if total else 0.0, "jobs": n}
                     for name, v in parts.items()}
    return out


def print_profile(conf: str, stages: dict[str, dict[str, dict[str, float]]], cpu: dict[str, float],
                  window: float, machine_busy: float | None) -> None:
    print(f"  where the time goes ({conf}): mean seconds per stage (share of latency) [p50]")
    for kind, parts in stages.items():
        cells = "  ".join(f"{name} {p['mean']:.3f} ({100 * p['share']:.0f}%) [{p['p50']:.3f}]"
                          for name, p in parts.items())
        print(f"    {kind:6s} {cells}")
    used = sum(cpu.values())
    print(f"  CPU seconds in the {window:.1f} s window ({os.cpu_count()} cores: "
          f"{used / window:.2f} of them busy with this exchange on average"
          + (f", {machine_busy:.2f} with every process on the machine" if machine_busy is not None else "") + "):")
    for who, s in sorted(cpu.items(), key=lambda x: -x[1]):
        print(f"    {who:12s} {s:7.1f} s  ({100 * s / used if used else 0:.0f}%)")


# ------------------------------------------------------------------ one configuration
@dataclass
class Options:
    duration_s: float
    buyers: int
    holders: int
    rows: int
    backend: str
    buyer_processes: int
    baseline_s: float
    profile: bool
    cover: bool = False
    key_reuse_s: float = 0.0
    mix: tuple[tuple[str, float], ...] = MIX
    expected: dict[tuple[str, ...], tuple[int, ...]] = field(default_factory=dict)


def run_setup(setup: Setup, opts: Options, rec: Record, stores: list[dict[str, Any]]) -> list[Sample]:
    conf = setup.name
    with tempfile.TemporaryDirectory(prefix="wharf-load-") as tmp:
        root = Path(tmp)
        with setup.exchange(root) as ex:
            ex.start_gateway()
            names = [f"holder-{i:02d}" for i in range(opts.holders)]
            for i, name in enumerate(names):
                ex.start_party(name, write_holder(root, i, opts.rows, ex.address))
            ex.wait_online(DATASET, names, timeout_s=120)
            ident = {f"buyer-{b:02d}": str(ex.identity(f"buyer-{b:02d}")) for b in range(opts.buyers)}
            one = BuyerSpec(ex.address, (("baseline", str(ex.identity("baseline"))),), opts.baseline_s,
                            opts.holders, opts.rows, (("single", 1.0),), opts.backend, opts.expected, seed=99,
                            key_reuse_s=opts.key_reuse_s)
            base, base_start, _ = run_buyers([one], processes=False)
            bw, bsum = summarise(base, base_start)

            nproc = max(1, min(opts.buyer_processes, opts.buyers))
            buyers = list(ident.items())
            specs = [BuyerSpec(ex.address, tuple(buyers[p::nproc]), opts.duration_s, opts.holders, opts.rows,
                               opts.mix, opts.backend, opts.expected, seed=p + 1, cover=opts.cover,
                               key_reuse_s=opts.key_reuse_s)
                     for p in range(nproc)]
            pids = {name: p.pid for name, p in ex.procs.procs}
            cpu0: dict[str, float] = {}
            machine0: list[tuple[int, int]] = []

            def clocks_start() -> None:
                cpu0.update({n: cpu_seconds(pid) for n, pid in pids.items()})
                machine0.append(machine_ticks())

            samples, start, buyer_cpu = run_buyers(specs, processes=opts.buyer_processes > 0, on_go=clocks_start)
            cpu = {n: cpu_seconds(pid) - cpu0[n] for n, pid in pids.items()}
            busy, total = (b - a for a, b in zip(machine0[0], machine_ticks()))
            machine_busy = (os.cpu_count() or 1) * busy / total if total else None
            try:
                ex.alive()
            except RuntimeError as exc:  # a holder or the gateway died under load: no figure holds
                raise BenchmarkFailed(f"{conf}: {exc}") from None
            ex.stop()
            window, summary = summarise(samples, start)
            stages = stage_times(*store_times(setup, ex.gateway_dir), samples) if opts.profile else {}

    for kind, s in summary.items():
        case = f"{kind}@{conf}"
        rec.add(case, "jobs", [s["jobs"]], "jobs")
        rec.add(case, "jobs_per_s", [s["jobs_per_s"]], "jobs/s")
        for m in ("p50_seconds", "p99_seconds"):
            if s[m] is not None:
                rec.add(case, m, [s[m]], "s")
        rec.add(case, "errors", [s["errors"]], "errors")
    rec.add(f"one-buyer@{conf}", "jobs_per_s", [bsum["single"]["jobs_per_s"]], "jobs/s")
    if bsum["single"]["p50_seconds"] is not None:
        rec.add(f"one-buyer@{conf}", "p50_seconds", [bsum["single"]["p50_seconds"]], "s")
    print(f"  {conf}: {summary['all']['jobs']} jobs in {window:.1f} s = {summary['all']['jobs_per_s']:.2f} jobs/s, "
          f"{summary['all']['errors']} errors; one buyer alone {bsum['single']['jobs_per_s']:.2f} single jobs/s",
          flush=True)
    for kind in [k for k, _ in MIX]:
        s = summary[kind]
        if s["jobs"]:
            print(f"    {kind:6s} {s['jobs']:5d} jobs  {s['jobs_per_s']:6.2f} jobs/s  p50 {s['p50_seconds']:.3f} s  "
                  f"p99 {s['p99_seconds']:.3f} s  errors {s['errors']}", flush=True)
    entry: dict[str, Any] = {**setup.describe(), "gateway_args": [], "window_s": window,
                             "baseline_window_s": bw, "kinds": summary, "one_buyer": bsum["single"]}
    if opts.profile:
        # Processes by role: the gateway (every replica, and a balancer in front of them), the holders.
        gateway = [n for n in cpu if n.startswith("gateway") or n == "balancer"]
        cpu_by = {"gateway": sum(cpu[n] for n in gateway),
                  "holders": sum(v for n, v in cpu.items() if n not in gateway), "buyers": buyer_cpu}
        entry["profile"] = {"stages": stages, "cpu_seconds": cpu_by, "cpu_seconds_per_process": cpu,
                            "cores": os.cpu_count(), "machine_cores_busy": machine_busy,
                            "single_job_crypto": crypto_costs(opts.backend, opts.holders)}
        print_profile(conf, stages, cpu_by, window, machine_busy)
        c = entry["profile"]["single_job_crypto"]
        print(f"  one single-figure job's cryptography ({c['backend']}, in process): buyer key generation "
              f"{c['buyer_keygen_s']:.3f} s, each holder's key check {c['holder_key_check_s']:.3f} s "
              f"and encryption {c['holder_encrypt_s']:.3f} s", flush=True)
    stores.append(entry)
    return samples


class LoadRecord(Record):
    """A record with a ``stores`` section: each gateway configuration, its figures and profile."""

    stores: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "stores": self.stores}


def run(*, quick: bool, duration: float | None = None, buyers: int | None = None, holders: int | None = None,
        store: str = THROWAWAY, replicas: int = 2, profile: bool = False, backend: str = "auto",
        buyer_processes: int | None = None, key_reuse_s: float = 0.0) -> Record:
    cluster = None
    if store == THROWAWAY:
        # A PostgreSQL server of the run's own, removed afterwards (initdb, loopback, no fsync).
        if not pgcluster.available():
            raise BenchmarkFailed("PostgreSQL's server is not installed (apt-get install postgresql); pass "
                                  "--store sqlite to run the SQLite configuration alone, or --store URL")
        cluster = pgcluster.Cluster()
        store = cluster.database()
    try:
        return _run(quick=quick, duration=duration, buyers=buyers, holders=holders, store=store,
                    replicas=replicas, profile=profile, backend=backend, buyer_processes=buyer_processes,
                    key_reuse_s=key_reuse_s)
    finally:
        if cluster is not None:
            cluster.stop()


def _run(*, quick: bool, duration: float | None, buyers: int | None, holders: int | None, store: str,
         replicas: int, profile: bool, backend: str, buyer_processes: int | None, key_reuse_s: float) -> Record:
    setups = [Setup()]
    if (store, replicas) != (SQLITE, 1):
        setups.append(Setup(store, replicas))
    for s in setups:  # before anything starts: a configuration the launcher cannot start fails at once
        s.check()
    opts = Options(duration_s=duration or (3.0 if quick else 30.0), buyers=buyers or (3 if quick else 50),
                   holders=holders or (2 if quick else 5), rows=200 if quick else 1000, backend=backend,
                   buyer_processes=buyer_processes if buyer_processes is not None else (0 if quick else 2),
                   baseline_s=1.0 if quick else 10.0, profile=profile, cover=quick, key_reuse_s=key_reuse_s)
    opts.expected = truth(opts.holders, opts.rows)
    rec = LoadRecord("load", quick, {
        "buyers": opts.buyers, "holders": opts.holders, "duration_s": opts.duration_s,
        "rows_per_holder": opts.rows, "mix": dict(MIX), "psi_ids": PSI_IDS, "backend": opts.backend,
        "key_reuse_s": opts.key_reuse_s,
        "buyer_processes": opts.buyer_processes or "threads in the benchmark process",
        "baseline": f"one buyer, single-figure jobs one after another, {opts.baseline_s:g} s",
        "security": "mutual TLS, a certificate per buyer, signed jobs and receipts",
        "dp": "off in the holders' policy (enabled = false): every answer checked exactly",
        "quotas": "the gateway's defaults (16 open jobs, 60 jobs/minute per buyer); not raised",
        "configurations": [s.describe() for s in setups]})
    rec.stores = []
    errors: list[str] = []
    for setup in setups:
        samples = run_setup(setup, opts, rec, rec.stores)
        errors += [f"{setup.name}: {s.error}" for s in samples if s.error]
    for setup in setups:
        conf = setup.name
        jps, p99 = rec.get(f"single@{conf}", "jobs_per_s"), rec.get(f"single@{conf}", "p99_seconds")
        every, one = rec.get(f"all@{conf}", "jobs_per_s"), rec.get(f"one-buyer@{conf}", "jobs_per_s")
        rec.check(f"errors@{conf}", rec.get(f"all@{conf}", "errors"), "= 0", lambda x: x == 0)
        rec.check(f"single_jobs_per_s@{conf}", jps if not quick else None, f">= {TARGET_JOBS_PER_S:g} (full run)",
                  lambda x: x >= TARGET_JOBS_PER_S)
        rec.check(f"single_p99_seconds@{conf}", p99 if not quick else None, f"< {TARGET_P99_S:g} (full run)",
                  lambda x: x < TARGET_P99_S)
        # Does concurrency buy throughput: every job of the mix per second against one buyer's jobs in a row.
        rec.check(f"jobs_per_s_over_one_buyer@{conf}", every / one if every and one else None, ">= 1",
                  lambda x: x >= 1)
    if errors:
        distinct = sorted(set(errors))
        raise BenchmarkFailed(f"{len(errors)} errors, e.g.:\n  " + "\n  ".join(distinct[:5]))
    return rec


__all__ = ["Setup", "run"]
