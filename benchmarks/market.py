"""Benchmark `market`: what listing review and metering cost a stream of jobs, in jobs per second.

The same stream of small jobs as `ledger` (a count over H holders, so the
job's own work is as small as it gets and the market's share as large) runs
through a gateway whose holders' listings were reviewed, approved and priced,
with an operator's fee, so every DONE job is charged (a `job_charged` ledger
entry with H + 1 exact-decimal lines), and through one with review off and
nothing charged; both in the same run, over mutual TLS with signed jobs.

    jobs@market      jobs per second with every job metered
    jobs@no-market   the baseline: the same jobs, review off, no charges
Metric: jobs_per_s (median over repetitions of a batch of jobs). The run
also checks that the buyer's statement holds one holder line per holder and
job and one fee line per job, and that they add up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

from benchmarks.aggregate import make_data, write_holder
from benchmarks.cluster import Cluster
from benchmarks.harness import BenchmarkFailed, Record
from benchmarks.ledger import batch
from datawharf.pki import Role

PRICE = "2.50"


def _wharf(*args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([sys.executable, "-m", "wharf", *args, "--json"], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise BenchmarkFailed(f"wharf {' '.join(args[:2])}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def open_market(cluster: Cluster) -> None:
    """Each holder lists bench_small at PRICE per job; an operator approves every listing."""
    operator = str(cluster.identity("bench-ops", Role.OPERATOR))
    for name in cluster.names:
        _wharf("listing", "submit", "--config", str(cluster.root / f"{name}.toml"), "--dataset", "bench_small",
               "--title", "bench", "--classification", "internal", "--personal-data", "no",
               "--price-per-job", PRICE, "--currency", "CNY")
    for x in _wharf("listing", "list", "--state", "pending", "-g", cluster.address, "-i", operator)["listings"]:
        _wharf("listing", "approve", x["listing_id"], "-g", cluster.address, "-i", operator)


def run(*, quick: bool) -> Record:
    h, jobs, reps = (2, 5, 1) if quick else (3, 30, 3)
    rec = Record("market", quick, {"holders": h, "jobs_per_batch": jobs, "repetitions": reps, "price": PRICE,
                                   "fee_percent": 2.5, "job": "count over one row per holder (bfv)"})
    data = make_data(h, 8)
    # A benchmark is one buyer submitting as fast as it can: the per-buyer quotas are off.
    unlimited = ("--jobs-per-minute", "0", "--max-open-jobs", "0")
    for case, market in (("jobs@no-market", None), ("jobs@market", open_market)):
        args = unlimited + (("--fee-percent", "2.5") if market else ())
        with Cluster(h, write_holder(data, 4), gateway_args=args, open_market=market) as cluster, \
                cluster.client("bench") as client:
            batch(client, 2)  # warm: connections, keys
            rec.add(case, "jobs_per_s", [batch(client, jobs) for _ in range(reps)], "jobs/s")
            print(f"  {case}: {rec.get(case, 'jobs_per_s'):.2f} jobs/s", flush=True)
            if market:
                ran = 2 + jobs * reps
                bill = _wharf("billing", "statement", "--buyer", "bench", "--data-dir", str(cluster.gateway_dir))
                lines, fees = bill["lines"], bill["fees"]
                total = sum((Decimal(x["amount"]) for x in lines + fees), Decimal(0))
                fee = (h * Decimal(PRICE) * Decimal("0.025")).quantize(Decimal("0.01"))
                want = ran * (h * Decimal(PRICE) + fee)
                if len(lines) != ran * h or len(fees) != ran or total != want or bill["totals"] != {"CNY": str(want)}:
                    raise BenchmarkFailed(f"{ran} jobs billed in {len(lines)} lines and {len(fees)} fees totalling "
                                          f"{total} ({bill['totals']}), not {want}")
    metered, bare = rec.get("jobs@market", "jobs_per_s"), rec.get("jobs@no-market", "jobs_per_s")
    rec.check("market_over_no_market_jobs_per_s", metered / bare if metered and bare else None, ">= 0.9",
              lambda x: x >= 0.9)
    return rec
