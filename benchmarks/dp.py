"""Benchmark `dp`: what differential privacy costs a sum, in accuracy and in time.

H holders with R rows each list the same file twice: once under differential
privacy at the holder's default terms (ρ = 0.05 per job, values clipped to
[0, 5000], full noise at every holder) and once opted out. The same sum of
`cost` runs against both, through one gateway in the same run, over mutual
TLS with signed jobs and receipts.

    sum@exact      the baseline: the exact sum, no noise
    sum@dp         the same job with every holder's noise
Metrics: seconds per job (median over repetitions); relative_error of the
noisy sum against the exact one (median over repetitions) beside the noise
sd the holders declared, relative to the total.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.cluster import Cluster
from benchmarks.harness import BenchmarkFailed, Record

BOUND = 5000


def write_holder(rows: int):  # type: ignore[no-untyped-def]
    def write(root: Path, i: int, gateway: str) -> str:
        rng = np.random.default_rng(1000 + i)
        cents = np.clip(np.round(rng.lognormal(6.2, 0.9, rows) * 100), 0, BOUND * 100).astype(np.int64)
        pq.write_table(pa.table({"cost": cents / 100}), root / f"visits-{i}.parquet")
        blocks = []
        for name, dp in (("visits_dp", "budget = 100.0"), ("visits_exact", "enabled = false")):
            blocks.append(f"""
[[datasets]]
name = "{name}"
source = "visits-{i}.parquet"
columns = [{{ name = "cost", type = "decimal", decimals = 2, aggregate = true, bounds = [0, {BOUND}] }}]
[datasets.policy]
allowed_buyers = ["*"]
min_rows = 1
[datasets.policy.dp]
{dp}
""")
        return f'name = "holder-{i:02d}"\ngateway = "{gateway}"\n' + "".join(blocks)
    return write


def run(*, quick: bool) -> Record:
    h, rows, reps = (3, 10_000, 2) if quick else (10, 100_000, 7)
    rec = Record("dp", quick, {"holders": h, "rows_per_holder": rows, "repetitions": reps,
                               "rho_per_job": 0.05, "bounds": [0, BOUND], "noise": "full"})
    with Cluster(h, write_holder(rows), gateway_args=("--jobs-per-minute", "0")) as cluster, cluster.client("bench") as client:
        client.result(client.submit("visits_exact", "cost", "sum", timeout_s=600))  # warm: connections, keys
        exact_s, dp_s, errors, sds = [], [], [], []
        truth = None
        for _ in range(reps):
            t0 = time.perf_counter()
            exact = client.result(client.submit("visits_exact", "cost", "sum", timeout_s=600), timeout_s=600)
            t1 = time.perf_counter()
            noisy = client.result(client.submit("visits_dp", "cost", "sum", timeout_s=600), timeout_s=600)
            t2 = time.perf_counter()
            if len(noisy.contributors) != h or len(exact.contributors) != h:
                raise BenchmarkFailed(f"not every holder contributed: {noisy.view.reason or exact.view.reason}")
            if noisy.noise is None or not noisy.noise.private:
                raise BenchmarkFailed("the dp dataset's answer declares no noise")
            truth = float(exact.value)
            exact_s.append(t1 - t0)
            dp_s.append(t2 - t1)
            errors.append(abs(noisy.value - truth) / abs(truth))
            sds.append(noisy.noise.sd["sum"] / abs(truth))
    rec.add("sum@exact", "seconds", exact_s, "s")
    rec.add("sum@dp", "seconds", dp_s, "s")
    rec.add("sum@dp", "relative_error", errors, "ratio", declared_sd_relative=sds[0], exact_total=truth)
    print(f"  sum@exact {rec.get('sum@exact', 'seconds'):.3f} s, sum@dp {rec.get('sum@dp', 'seconds'):.3f} s, "
          f"relative error {rec.get('sum@dp', 'relative_error'):.2e} (declared sd {sds[0]:.2e})", flush=True)
    slow, fast = rec.get("sum@dp", "seconds"), rec.get("sum@exact", "seconds")
    rec.check("dp_over_exact_seconds", slow / fast if slow and fast else None, "<= 1.5", lambda x: x <= 1.5)
    # The error should be what the holders declared: within 3 sd (the median of |N(0, sd)| is 0.67 sd).
    err = rec.get("sum@dp", "relative_error")
    rec.check("relative_error_over_declared_sd", err / sds[0] if err is not None else None, "<= 3",
              lambda x: x <= 3)
    return rec
