"""Benchmark `psi`: n IDs per side, half overlapping.

Cases (each result carries n):
    hash-join                    plain set intersection of the raw IDs (the floor)
    dh-floor                     one X25519 multiplication × the 4n the protocol needs,
                                 spread over every core: the cost is measured with
                                 every core multiplying at once (a machine's cores
                                 slow each other down), and also reported alone
    psi@inprocess                the protocol's roles in one process, one core
    psi@gateway                  buyer, gateway and holder processes on loopback (mutual TLS,
                                 signed job and receipt)
    psi@gateway-insecure         the same at the middle size through an --insecure gateway
    psi-sum@gateway              join-and-sum of one value column, same sizes
    psi-unbalanced-warm@gateway  a small buyer list against a large holder set,
                                 the holder's OPRF table already made and published
    openmined                    OpenMined's PSI (openmined-psi) in its own venv, if present
    psi-multi@gateway            one buyer's n IDs against k = 5 holders' n IDs each, IDs at
                                 t = 3 of them (protocols.psi_multi), against
    dh-floor-multi               the n·(1 + 3k) multiplications it needs (the buyer blinds n and
                                 re-blinds each holder's n; each holder re-blinds the buyer's n
                                 and blinds its own n), at the all-cores cost; its
                                 bytes_per_element are over all k + 1 sets
    psi@gateway-streamed         ``--large 20,22``: the buyer's IDs from a file, every process
                                 streaming (datawharf.buckets), a fresh cluster per size, each
                                 process's peak RSS beside the time and the DH floor
Metrics: seconds; bytes_per_element (every message through the gateway, from
its metrics, over both sets); peak_rss_mib per process at the largest n.

The default run takes the multi-holder case at 2^14 per holder (2^8 quick);
``python -m benchmarks.psi --multi-holder`` runs that case alone at 2^18 per
holder × 5 holders (``--multi-log2``, ``--holders``, ``--at-least`` to vary it)
and writes its record like the whole benchmark's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.cluster import Cluster
from benchmarks.harness import RESULTS_DIR, BenchmarkFailed, Record, peak_rss_mib
from buyers.client import Client
from protocols import psi

ROOT = Path(__file__).resolve().parent.parent
OPENMINED_PY = ROOT / ".venv-openmined" / "bin" / "python"


def holder_ids(n: int) -> list[str]:
    return [f"id-{i:08d}" for i in range(n)]


def buyer_ids(n: int) -> list[str]:
    return [f"id-{i:08d}" for i in range(n // 2)] + [f"b-{i:08d}" for i in range(n - n // 2)]


def value(i: int) -> int:
    return (i * 7919) % 100_000 - 50_000  # cents, some negative


def write_holder(sizes: list[int]):  # type: ignore[no-untyped-def]
    def write(root: Path, i: int, gateway: str) -> str:
        blocks = []
        for n in sizes:
            pq.write_table(pa.table({"id": holder_ids(n), "value": [value(j) / 100 for j in range(n)]}),
                           root / f"ids_{n}.parquet")
            blocks.append(f"""
[[datasets]]
name = "ids_{n}"
source = "ids_{n}.parquet"
columns = [
  {{ name = "id", type = "string", join_key = true }},
  {{ name = "value", type = "decimal", decimals = 2, psi_value = true }},
]
[datasets.policy]
allowed_buyers = ["*"]
allowed_psi = ["intersection", "cardinality", "sum", "unbalanced"]
min_intersection = 1
psi_jobs_per_period = 100000        # a benchmark runs many jobs; quotas are tested elsewhere
psi_ids_per_period = 1000000000000
[datasets.policy.dp]
enabled = false
""")
        return f'name = "holder-{i:02d}"\ngateway = "{gateway}"\n' + "".join(blocks)
    return write


def multi_window(n: int, i: int) -> range:
    """Holder i's IDs in the multi-holder case: n of them from i·n/8, so buyer ID j (0 <= j < n) is at
    holders 0 .. min(8j/n, k − 1): all five hold the upper half of the buyer's list."""
    start = i * n // 8
    return range(start, start + n)


def multi_expected(n: int, k: int, t: int) -> int:
    """How many of the buyer's n IDs are at t or more of the k holders."""
    j = np.arange(n)
    counts = np.zeros(n, dtype=np.int64)
    for w in (multi_window(n, i) for i in range(k)):
        counts += (w.start <= j) & (j < w.stop)
    return int(np.count_nonzero(counts >= t))


def write_multi_holders(n: int):  # type: ignore[no-untyped-def]
    def write(root: Path, i: int, gateway: str) -> str:
        window = multi_window(n, i)
        pq.write_table(pa.table({"id": [f"id-{j:08d}" for j in window], "value": [value(j) / 100 for j in window]}),
                       root / f"multi_{n}_h{i}.parquet")
        return f"""name = "holder-{i:02d}"
gateway = "{gateway}"

[[datasets]]
name = "multi_{n}"
source = "multi_{n}_h{i}.parquet"
columns = [
  {{ name = "id", type = "string", join_key = true }},
  {{ name = "value", type = "decimal", decimals = 2, psi_value = true }},
]
[datasets.policy]
allowed_buyers = ["*"]
allowed_psi = ["intersection", "cardinality", "sum"]
min_intersection = 1
psi_jobs_per_period = 100000
psi_ids_per_period = 1000000000000
[datasets.policy.dp]
enabled = false
"""
    return write


def multi_holder(rec: Record, n: int, *, holders: int = 5, at_least: int = 3, reps: int = 1) -> None:
    """The multi-holder case: its seconds and bytes per element, the floor for its multiplications, and
    the peak RSS of the gateway's and holders' processes."""
    cost = rec.get("x25519-all-cores", "seconds_per_multiplication")
    mults = n * (1 + 3 * holders)
    if cost:
        rec.add("dh-floor-multi", "seconds", [cost * mults], "s", n=n, holders=holders, multiplications=mults)
    expected = multi_expected(n, holders, at_least)
    with Cluster(holders, write_multi_holders(n), http=True) as cluster, cluster.client("bench") as client:
        names = tuple(cluster.names)
        ids = [f"id-{j:08d}" for j in range(n)]
        secs, per_el = [], []
        for _ in range(reps):
            before = gateway_bytes(cluster.http)
            t = time.perf_counter()
            ans = client.psi(f"multi_{n}", "id", ids, parties=names, at_least=at_least)
            secs.append(time.perf_counter() - t)
            per_el.append((gateway_bytes(cluster.http) - before) / ((1 + holders) * n))
            if ans.size != expected or len(ans.matched) != expected:
                raise BenchmarkFailed(f"psi-multi@gateway n={n}: {ans.size} IDs at {at_least} of {holders} "
                                      f"holders, expected {expected}")
        extra = {"n": n, "holders": holders, "at_least": at_least}
        rec.add("psi-multi@gateway", "seconds", secs, "s", **extra)
        rec.add("psi-multi@gateway", "bytes_per_element", per_el, "bytes", **extra)
        print(f"  psi-multi@gateway n={n} x {holders} holders: {statistics.median(secs):.2f} s", flush=True)
        for name, proc in cluster.procs.procs:
            hwm = vm_hwm_mib(proc.pid)
            if hwm is not None:
                rec.add(f"{name}-process", "peak_rss_mib", [hwm], "MiB", **extra)
    floor = rec.get("dh-floor-multi", "seconds")
    ours = statistics.median(secs)
    rec.check(f"multi_gateway_over_dh_floor_n{n}_k{holders}", ours / floor if floor else None, "<= 1.5",
              lambda x: x <= 1.5)


def run_multi(*, quick: bool, log2: int = 18, holders: int = 5, at_least: int = 3) -> Record:
    """The multi-holder case alone (``--multi-holder``): 2^log2 IDs per holder, ``holders`` holders."""
    n = 1 << (8 if quick else log2)
    cores = os.cpu_count() or 1
    rec = Record("psi", quick, {"multi_holder_only": True, "n": n, "holders": holders, "at_least": at_least,
                                "overlap": "holder i holds n IDs from i*n/8", "cores": cores})
    rec.add("x25519", "seconds_per_multiplication", [op_cost()], "s", alone=True)
    rec.add("x25519-all-cores", "seconds_per_multiplication", [parallel_op_cost(cores, 1024 if quick else 8192)],
            "s", note="wall time / multiplications")
    multi_holder(rec, n, holders=holders, at_least=at_least)
    rec.add("buyer-process", "peak_rss_mib", [peak_rss_mib()], "MiB", n=n)
    rec.add("largest-child-process", "peak_rss_mib", [peak_rss_mib(children=True)], "MiB", n=n)
    peaks = [r["value"] for r in rec.results if r["metric"] == "peak_rss_mib"]
    rec.check(f"max_process_peak_mib_multi_n{n}", max(peaks) if peaks else None, "< 2048", lambda x: x < 2048)
    return rec


def op_cost(samples: int = 4000) -> float:
    key = psi.Key()
    pts = [psi.hash_to_u(str(i).encode()) for i in range(samples)]
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        key.blind(pts)
        runs.append((time.perf_counter() - t) / samples)
    return statistics.median(runs)


def parallel_op_cost(cores: int, per_core: int = 8192) -> float:
    """Wall seconds per multiplication with every core multiplying at once."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    key = psi.Key()
    chunk = [psi.hash_to_u(str(i).encode()) for i in range(per_core)]
    with ProcessPoolExecutor(max_workers=cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(psi.run_chunk, [(key.raw(), "blind", chunk[:64])] * cores))  # start the workers
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            list(pool.map(psi.run_chunk, [(key.raw(), "blind", chunk)] * cores))
            runs.append((time.perf_counter() - t) / (per_core * cores))
    return statistics.median(runs)


def inprocess(n: int) -> float:
    t = time.perf_counter()
    b = psi.Buyer(buyer_ids(n))
    h = psi.Holder(holder_ids(n))
    a = b.blinded()
    d, w = h.answer(a, cardinality_only=False)
    z = b.reblind(w)
    m = psi.match(d, z, minimum=1, cardinality_only=False)
    if m.size != n // 2:
        raise BenchmarkFailed(f"psi@inprocess n={n}: intersection {m.size}, expected {n // 2}")
    return time.perf_counter() - t


def gateway_bytes(http: str) -> float:
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(m) for m in re.findall(r'^wharf_grpc_bytes_(?:received|sent)_total\{[^}]*\} (\S+)$', text, re.M))


def vm_hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def openmined(n: int) -> dict[str, Any] | None:
    if not OPENMINED_PY.exists():
        return None
    out = subprocess.run([str(OPENMINED_PY), str(ROOT / "benchmarks" / "openmined_peer.py"), str(n)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise BenchmarkFailed(f"openmined n={n} failed: {out.stderr[-500:]}")
    result = json.loads(out.stdout)
    if result["size"] != n // 2:
        raise BenchmarkFailed(f"openmined n={n}: intersection {result['size']}, expected {n // 2}")
    return result


def run(*, quick: bool, large: str = "") -> Record:
    if large:
        return run_large([int(k) for k in large.split(",")])
    sizes = [1 << 10] if quick else [1 << 16, 1 << 18, 1 << 20]
    small, large = (1 << 8, 1 << 12) if quick else (1 << 12, 1 << 20)
    om_sizes = [1 << 10] if quick else [1 << 16, 1 << 18]
    cores = os.cpu_count() or 1
    rec = Record("psi", quick, {"sizes": sizes, "overlap": "half", "unbalanced": [small, large], "cores": cores})
    rec.add("x25519", "seconds_per_multiplication", [op_cost()], "s", alone=True)
    cost = parallel_op_cost(cores, 1024 if quick else 8192)
    rec.add("x25519-all-cores", "seconds_per_multiplication", [cost], "s", note="wall time / multiplications")
    for n in sizes:
        reps = 1 if n >= 1 << 20 else 2
        b, h = buyer_ids(n), holder_ids(n)
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            inter = set(b) & set(h)
            runs.append(time.perf_counter() - t)
        assert len(inter) == n // 2
        rec.add("hash-join", "seconds", runs, "s", n=n)
        rec.add("dh-floor", "seconds", [cost * 4 * n], "s", n=n)
        if n <= 1 << 18:
            rec.add("psi@inprocess", "seconds", [inprocess(n) for _ in range(reps)], "s", n=n)
        print(f"  n={n}: in-process done", flush=True)

    with Cluster(1, write_holder(sorted({*sizes, large})), http=True) as cluster, \
            cluster.client("bench") as client:
        for n in sizes:
            reps = 1 if n >= 1 << 20 else 2
            ids = buyer_ids(n)
            for case, mode in (("psi@gateway", "intersection"), ("psi-sum@gateway", "sum")):
                secs, per_el = [], []
                for _ in range(reps):
                    before = gateway_bytes(cluster.http)
                    t = time.perf_counter()
                    ans = client.psi(f"ids_{n}", "id", ids, mode=mode, value_columns=["value"] if mode == "sum" else ())
                    secs.append(time.perf_counter() - t)
                    per_el.append((gateway_bytes(cluster.http) - before) / (2 * n))
                    if ans.size != n // 2:
                        raise BenchmarkFailed(f"{case} n={n}: intersection {ans.size}, expected {n // 2}")
                    if mode == "sum" and ans.totals["value"] * 100 != sum(value(i) for i in range(n // 2)):
                        raise BenchmarkFailed(f"{case} n={n}: the sum is wrong")
                rec.add(case, "seconds", secs, "s", n=n)
                rec.add(case, "bytes_per_element", per_el, "bytes", n=n)
                print(f"  {case} n={n}: {statistics.median(secs):.2f} s", flush=True)
        ids = [f"id-{i:08d}" for i in range(small // 2)] + [f"q-{i:08d}" for i in range(small - small // 2)]
        client.psi(f"ids_{large}", "id", ids, mode="unbalanced")  # makes and publishes the epoch's table
        secs = []
        for _ in range(3):
            t = time.perf_counter()
            ans = client.psi(f"ids_{large}", "id", ids, mode="unbalanced")
            secs.append(time.perf_counter() - t)
            if ans.size != small // 2:
                raise BenchmarkFailed(f"unbalanced: intersection {ans.size}, expected {small // 2}")
        rec.add("psi-unbalanced-warm@gateway", "seconds", secs, "s", n=small, holder_n=large)
        for name, proc in cluster.procs.procs:
            hwm = vm_hwm_mib(proc.pid)
            if hwm is not None:
                rec.add(f"{name}-process", "peak_rss_mib", [hwm], "MiB", n=max(sizes))
    multi_holder(rec, 1 << (8 if quick else 14), reps=1 if quick else 2)
    # What mutual TLS and signatures cost: the mid-size intersection again through an --insecure gateway.
    mid = sizes[1] if len(sizes) > 1 else sizes[0]
    with Cluster(1, write_holder([mid]), insecure=True) as cluster, cluster.client("bench") as client:
        ids = buyer_ids(mid)
        secs = []
        for _ in range(2):
            t = time.perf_counter()
            if client.psi(f"ids_{mid}", "id", ids).size != mid // 2:
                raise BenchmarkFailed(f"psi@gateway-insecure n={mid}: wrong intersection")
            secs.append(time.perf_counter() - t)
        rec.add("psi@gateway-insecure", "seconds", secs, "s", n=mid)
        print(f"  psi@gateway-insecure n={mid}: {statistics.median(secs):.2f} s", flush=True)
    rec.add("buyer-process", "peak_rss_mib", [peak_rss_mib()], "MiB", n=max(sizes))
    # The largest of every ended child: the buyer's worker processes, and the
    # gateway and holder processes once the cluster has stopped.
    rec.add("largest-child-process", "peak_rss_mib", [peak_rss_mib(children=True)], "MiB", n=max(sizes))

    for n in om_sizes:
        om = openmined(n)
        if om is None:
            print("  openmined: skipped (run `make bench` to create .venv-openmined)", flush=True)
            break
        rec.add("openmined", "seconds", [om["seconds"]], "s", n=n)
        rec.add("openmined", "bytes_per_element", [om["bytes"] / (2 * n)], "bytes", n=n)

    def get(case: str, n: int, metric: str = "seconds") -> float | None:
        return next((r["value"] for r in rec.results if r["case"] == case and r.get("n") == n and r["metric"] == metric), None)

    ref = om_sizes[-1]
    ours, theirs = get("psi@gateway", ref), get("openmined", ref)
    rec.check(f"openmined_over_gateway_n{ref}", theirs / ours if ours and theirs else None, ">= 3", lambda x: x >= 3)
    alone = rec.get("x25519", "seconds_per_multiplication")
    for n in sizes:
        g, f = get("psi@gateway", n), get("dh-floor", n)
        rec.check(f"gateway_over_dh_floor_n{n}", g / f if g and f else None, "<= 1.5", lambda x: x <= 1.5)
        # The same with the floor from one core's speed alone, as if cores did not slow each other.
        f_alone = alone * 4 * n / cores if alone else None
        rec.check(f"gateway_over_dh_floor_alone_n{n}", g / f_alone if g and f_alone else None, "<= 1.5",
                  lambda x: x <= 1.5)
    s, p = get("psi-sum@gateway", mid), get("psi@gateway", mid)
    plain = get("psi@gateway-insecure", mid)
    rec.check(f"tls_and_signing_over_insecure_n{mid}", p / plain if p and plain else None, "<= 1.25",
              lambda x: x <= 1.25)
    rec.check(f"psi_sum_over_psi_n{mid}", s / p if s and p else None, "<= 1.5", lambda x: x <= 1.5)
    peaks = [r["value"] for r in rec.results if r["metric"] == "peak_rss_mib"]
    rec.check(f"max_process_peak_mib_n{max(sizes)}", max(peaks) if peaks else None, "< 2048", lambda x: x < 2048)
    rec.check("unbalanced_warm_seconds", get("psi-unbalanced-warm@gateway", small), "< 5", lambda x: x < 5)
    return rec


# ------------------------------------------------------------------ large sets, streamed (--large)
def write_large_holder(n: int):  # type: ignore[no-untyped-def]
    """The holder's n IDs in a Parquet file written a million rows at a time."""
    def write(root: Path, i: int, gateway: str) -> str:
        schema = pa.schema([("id", pa.string()), ("value", pa.float64())])
        with pq.ParquetWriter(root / f"large_{n}.parquet", schema) as w:
            for start in range(0, n, 1 << 20):
                idx = range(start, min(n, start + (1 << 20)))
                w.write_table(pa.table({"id": [f"id-{j:08d}" for j in idx], "value": [value(j) / 100 for j in idx]},
                                       schema=schema))
        return f"""name = "holder-{i:02d}"
gateway = "{gateway}"

[[datasets]]
name = "large_{n}"
source = "large_{n}.parquet"
columns = [
  {{ name = "id", type = "string", join_key = true }},
  {{ name = "value", type = "decimal", decimals = 2, psi_value = true }},
]
[datasets.policy]
allowed_buyers = ["*"]
allowed_psi = ["intersection", "cardinality"]
min_intersection = 1
max_buyer_set = {n}
psi_jobs_per_period = 100000
psi_ids_per_period = 1000000000000
[datasets.policy.dp]
enabled = false
"""
    return write


def write_buyer_file(path: Path, n: int) -> None:
    """buyer_ids(n), one per line, written in blocks."""
    with open(path, "w") as f:
        for start in range(0, n // 2, 1 << 20):
            f.write("".join(f"id-{i:08d}\n" for i in range(start, min(n // 2, start + (1 << 20)))))
        for start in range(0, n - n // 2, 1 << 20):
            f.write("".join(f"b-{i:08d}\n" for i in range(start, min(n - n // 2, start + (1 << 20)))))


class _Sampler:
    """The largest RSS seen among a process's children (worker pools), sampled twice a second."""

    def __init__(self, pids: dict[str, int]) -> None:
        import threading

        self.pids = pids
        self.peaks: dict[str, float] = {name: 0.0 for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.5):
            for name, pid in self.pids.items():
                try:
                    kids = psutil.Process(pid).children(recursive=True)
                    if pid == os.getpid():  # the cluster's processes are this one's children too: not workers
                        others = {p for p in self.pids.values() if p != pid}
                        for other in list(others):
                            others |= {k.pid for k in psutil.Process(other).children(recursive=True)}
                        kids = [k for k in kids if k.pid not in others]
                    rss = max((k.memory_info().rss for k in kids), default=0)
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks[name], round(rss / 2**20, 1))

    def __enter__(self) -> "_Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def large_case(rec: Record, n: int) -> None:
    """psi@gateway-streamed at n per side: a fresh cluster, the buyer's IDs from a file, the time and every
    process's peak RSS (VmHWM: buyer, gateway, holder; the largest worker of each pool, sampled)."""
    import gc
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wharf-bench-large-") as tmp:
        ids = Path(tmp) / "buyer_ids.txt"
        write_buyer_file(ids, n)
        with Cluster(1, write_large_holder(n), http=True) as cluster, cluster.client("bench") as client:
            procs = {name: proc.pid for name, proc in cluster.procs.procs}
            gc.collect()
            Path("/proc/self/clear_refs").write_text("5")  # this process's peak from here: the buyer's
            with _Sampler({"buyer": os.getpid(), **procs}) as sampler:
                before = gateway_bytes(cluster.http)
                t = time.perf_counter()
                ans = client.psi(f"large_{n}", "id", ids, timeout_s=6 * 3600)
                secs = time.perf_counter() - t
                per_el = (gateway_bytes(cluster.http) - before) / (2 * n)
            if ans.size != n // 2 or ans.matched_rows is None or ans.matched_rows.size != n // 2 \
                    or int(ans.matched_rows[-1]) != n // 2 - 1:
                raise BenchmarkFailed(f"psi@gateway-streamed n={n}: intersection {ans.size}, expected {n // 2}")
            rec.add("psi@gateway-streamed", "seconds", [secs], "s", n=n)
            rec.add("psi@gateway-streamed", "bytes_per_element", [per_el], "bytes", n=n)
            rec.add("buyer-process", "peak_rss_mib", [vm_hwm_mib(os.getpid()) or 0.0], "MiB", n=n, streamed=True)
            for name, pid in procs.items():
                hwm = vm_hwm_mib(pid)
                if hwm is not None:
                    rec.add(f"{name}-process", "peak_rss_mib", [hwm], "MiB", n=n, streamed=True)
            for name, peak in sampler.peaks.items():
                rec.add(f"{name}-workers", "peak_rss_mib", [peak], "MiB", n=n, streamed=True,
                        note="largest worker process, sampled every 0.5 s")
            print(f"  psi@gateway-streamed n={n}: {secs:.1f} s; peak RSS "
                  + ", ".join(f"{r['case']} {r['value']} MiB" for r in rec.results
                              if r.get("n") == n and r["metric"] == "peak_rss_mib" and r.get("streamed")), flush=True)


def run_large(log2s: list[int]) -> Record:
    """``--large``: the streamed intersection through the gateway at 2^k per side for each k, with the DH
    floor and every process's peak RSS; checks peaks flat (largest size over smallest within 1.2x) and
    under 1 GiB."""
    sizes = [1 << k for k in log2s]
    cores = os.cpu_count() or 1
    rec = Record("psi", False, {"large": sizes, "overlap": "half", "cores": cores, "buyer_ids": "file, one per line"})
    rec.add("x25519", "seconds_per_multiplication", [op_cost()], "s", alone=True)
    cost = parallel_op_cost(cores, 8192)
    rec.add("x25519-all-cores", "seconds_per_multiplication", [cost], "s", note="wall time / multiplications")
    for n in sizes:
        rec.add("dh-floor", "seconds", [cost * 4 * n], "s", n=n)
        large_case(rec, n)
        g = next(r["value"] for r in rec.results if r["case"] == "psi@gateway-streamed" and r["n"] == n)
        rec.check(f"streamed_gateway_over_dh_floor_n{n}", g / (cost * 4 * n), "<= 1.5", lambda x: x <= 1.5)

    def peaks(n: int) -> dict[str, float]:
        return {r["case"]: r["value"] for r in rec.results
                if r.get("n") == n and r["metric"] == "peak_rss_mib" and r.get("streamed")}

    small, big = peaks(sizes[0]), peaks(sizes[-1])
    if len(sizes) > 1:
        for proc in ("buyer-process", "gateway-process", "holder-00-process"):
            if proc in small and proc in big and small[proc]:
                rec.check(f"peak_rss_{proc}_n{sizes[-1]}_over_n{sizes[0]}", big[proc] / small[proc], "<= 1.2",
                          lambda x: x <= 1.2)
    rec.check(f"max_process_peak_mib_streamed_n{sizes[-1]}", max(big.values()) if big else None, "< 1024",
              lambda x: x < 1024)
    return rec


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.psi [--quick] [--multi-holder ...]``: this benchmark alone, or its
    multi-holder case alone at full size."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.psi", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--multi-holder", action="store_true",
                        help="only the multi-holder case, at 2^(--multi-log2) IDs per holder")
    parser.add_argument("--multi-log2", type=int, default=18, help="log2 of the IDs per holder (default 18)")
    parser.add_argument("--holders", type=int, default=5, help="holders in the multi-holder case (default 5)")
    parser.add_argument("--at-least", type=int, default=3, help="the threshold t (default 3)")
    parser.add_argument("--large", type=str, default="",
                        help="only the streamed intersection at these log2 sizes per side, e.g. 20,22 (2^24: ~40 min)")
    parser.add_argument("--json", type=Path, default=None, help="also write the record here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where records accumulate")
    args = parser.parse_args(argv)
    try:
        if args.large:
            rec = run_large([int(k) for k in args.large.split(",")])
        elif args.multi_holder:
            rec = run_multi(quick=args.quick, log2=args.multi_log2, holders=args.holders, at_least=args.at_least)
        else:
            rec = run(quick=args.quick)
    except BenchmarkFailed as exc:
        print(f"FAILED: {exc}")
        return 1
    path = rec.write(args.json, args.results_dir)
    print(rec.table())
    print(f"record written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
