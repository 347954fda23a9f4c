"""Benchmark `ledger`: what recording every use costs, in jobs per second.

The same stream of small jobs (a count over H holders, so the job's own work
is as small as it gets and the ledger's share as large) runs through a
gateway with its ledger and through one started --no-ledger, in the same
run; both over mutual TLS with signed jobs and receipts.

    jobs@ledger       jobs per second with every event a signed, chained entry
    jobs@no-ledger    the baseline: the same gateway without the ledger
Metric: jobs_per_s (median over repetitions of a batch of jobs).
"""

from __future__ import annotations

import time

from benchmarks.aggregate import make_data, write_holder
from benchmarks.cluster import Cluster
from benchmarks.harness import BenchmarkFailed, Record


def batch(client, jobs: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for _ in range(jobs):
        answer = client.result(client.submit("bench_small", "ints", "count", backend="bfv", timeout_s=300))
        if answer.exact != len(client.catalog()[0].holders):
            raise BenchmarkFailed(f"count came back {answer.exact}")
    return jobs / (time.perf_counter() - t0)


def run(*, quick: bool) -> Record:
    h, jobs, reps = (2, 5, 1) if quick else (3, 30, 3)
    rec = Record("ledger", quick, {"holders": h, "jobs_per_batch": jobs, "repetitions": reps,
                                   "job": "count over one row per holder (bfv)"})
    data = make_data(h, 8)
    # A benchmark is one buyer submitting as fast as it can: the per-buyer quotas are off.
    unlimited = ("--jobs-per-minute", "0", "--max-open-jobs", "0")
    for case, args in (("jobs@no-ledger", ("--no-ledger", *unlimited)), ("jobs@ledger", unlimited)):
        with Cluster(h, write_holder(data, 4), gateway_args=args) as cluster, cluster.client("bench") as client:
            batch(client, 2)  # warm: connections, keys
            rec.add(case, "jobs_per_s", [batch(client, jobs) for _ in range(reps)], "jobs/s")
            print(f"  {case}: {rec.get(case, 'jobs_per_s'):.2f} jobs/s", flush=True)
    with_ledger, without = rec.get("jobs@ledger", "jobs_per_s"), rec.get("jobs@no-ledger", "jobs_per_s")
    rec.check("ledger_over_no_ledger_jobs_per_s", with_ledger / without if with_ledger and without else None,
              ">= 0.9", lambda x: x >= 0.9)
    return rec
