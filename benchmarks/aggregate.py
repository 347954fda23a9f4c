"""Benchmark `aggregate`: H holders × V values summed element-wise.

Cases, each in one process (@inprocess) and end to end through a gateway
with real party processes on loopback (@gateway, parties already connected;
mutual TLS, signed jobs and receipts), and the same through an --insecure
gateway (@gateway-insecure: plaintext, no signatures) for what safety costs:

    plaintext         numpy sum of the holders' vectors: the floor (in process only)
    paillier-naive    one phe ciphertext per value: the naive baseline, measured
                      on a subset of each vector (its rate, values/s, is what compares)
    paillier-packed   many slots per plaintext, DJN randomiser, fixed-base table
    bfv, ckks         TenSEAL SIMD vectors

Metrics: values_per_s end to end (key generation to decrypted answer);
encrypt_seconds, aggregate_seconds, decrypt_seconds (in process);
bytes_per_value of protocol messages (public parameters to the gateway and
each holder, every contribution, the result); max_abs_error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.cluster import Cluster
from benchmarks.harness import BenchmarkFailed, Record, peak_rss_mib
from datawharf.serde import contribution_to_proto, params_to_proto, result_to_proto
from buyers.client import Client
from protocols.aggregate import Buyer, Holder, combine
from protocols.figures import Layout, Statistic
from protocols.schemes import Backend

CASES = {
    "paillier-naive": (Backend.PAILLIER, "ints"),
    "paillier-packed": (Backend.PAILLIER_PACKED, "reals"),
    "bfv": (Backend.BFV, "ints"),
    "ckks": (Backend.CKKS, "reals"),
}
PLACES = {"ints": 0, "reals": 2}


def make_data(holders: int, values: int, seed: int = 7) -> dict[str, list[np.ndarray]]:
    """Per holder: integer vectors, and real vectors with two decimals (as scaled integers)."""
    rng = np.random.default_rng(seed)
    return {
        "ints": [rng.integers(-10_000, 10_000, values, dtype=np.int64) for _ in range(holders)],
        "reals": [rng.integers(-100_000, 100_000, values, dtype=np.int64) for _ in range(holders)],  # cents
    }


def _check(case: str, got: list, truth: np.ndarray, places: int, bound: float) -> float:  # type: ignore[type-arg]
    got_arr = np.array([float(x) for x in got])
    want = truth.astype(np.float64) / 10**places
    err = float(np.max(np.abs(got_arr - want))) if len(want) else 0.0
    if err > bound:
        raise BenchmarkFailed(f"{case}: max |error| {err:.3g} exceeds {bound:.3g}; the sums are wrong")
    return err


def inprocess(case: str, vectors: list[np.ndarray], places: int, backend: Backend) -> dict[str, Any]:
    h, v = len(vectors), len(vectors[0])
    layout = Layout(Statistic.SUM, v, 1)
    t0 = time.perf_counter()
    buyer = Buyer(layout, places, backend, h)
    t1 = time.perf_counter()
    contributions = {}
    for i, vec in enumerate(vectors):
        contributions[f"h{i}"] = Holder(buyer.request).contribute(vec.tolist())
    t2 = time.perf_counter()
    total = combine(buyer.request, contributions)
    t3 = time.perf_counter()
    (group,) = buyer.finish(total).groups
    t4 = time.perf_counter()
    bound = 0.0 if backend.exact else buyer.finish(total).max_abs_error
    err = _check(case, list(group.values), np.sum(vectors, axis=0), places, bound + 1e-9)
    params_bytes = params_to_proto(buyer.request.params).ByteSize()
    wire = (params_bytes * (1 + h) + sum(contribution_to_proto(c).ByteSize() for c in contributions.values())
            + result_to_proto("job", total, list(contributions)).ByteSize())
    return {"seconds": t4 - t0, "keygen": t1 - t0, "encrypt": t2 - t1, "aggregate": t3 - t2, "decrypt": t4 - t3,
            "bytes_per_value": wire / (h * v), "max_abs_error": err}


def write_holder(data: dict[str, list[np.ndarray]], small: int):  # type: ignore[no-untyped-def]
    def write(root: Path, i: int, gateway: str) -> str:
        for name, size in (("bench", None), ("bench_small", small)):
            table = pa.table({
                "id": [f"row-{i}"],
                "ints": [data["ints"][i][:size].astype(np.float64).tolist()],
                "reals": [(data["reals"][i][:size] / 100).tolist()],
            })
            pq.write_table(table, root / f"{name}-{i}.parquet")
        blocks = []
        for name, size in (("bench", len(data["ints"][i])), ("bench_small", small)):
            blocks.append(f"""
[[datasets]]
name = "{name}"
source = "{name}-{i}.parquet"
columns = [
  {{ name = "id", type = "string" }},
  {{ name = "ints", type = "vector", length = {size}, decimals = 0, aggregate = true }},
  {{ name = "reals", type = "vector", length = {size}, decimals = 2, aggregate = true }},
]
[datasets.policy]
allowed_buyers = ["*"]
min_rows = 1
[datasets.policy.dp]
enabled = false   # this benchmark measures the encrypted path; benchmarks/dp.py measures the noise
""")
        return f'name = "holder-{i:02d}"\ngateway = "{gateway}"\n' + "".join(blocks)
    return write


def through_gateway(client: Client, case: str, dataset: str, column: str, backend: Backend,
                    truth: np.ndarray, places: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    job = client.submit(dataset, column, "sum", backend=backend.value, timeout_s=3600)
    answer = client.result(job, timeout_s=3600)
    seconds = time.perf_counter() - t0
    if len(answer.contributors) != len(client.catalog()[0].holders):
        raise BenchmarkFailed(f"{case}: only {answer.contributors} contributed: {answer.view.reason}")
    err = _check(case, list(answer.groups[0].values), truth, places, answer.max_abs_error + 1e-9)
    return {"seconds": seconds, "max_abs_error": err}


def run(*, quick: bool) -> Record:
    h = 3 if quick else 10
    v = 5_000 if quick else 100_000
    naive_v = 20 if quick else 200
    reps = 1 if quick else 3
    rec = Record("aggregate", quick, {"holders": h, "values_per_holder": v, "naive_values_per_holder": naive_v,
                                      "repetitions": reps, "statistic": "sum (element-wise)"})
    data = make_data(h, v)

    # The floor: plaintext numpy, in process.
    stack = np.stack(data["reals"])
    runs = []
    for _ in range(max(reps, 5)):
        t = time.perf_counter()
        np.sum(stack, axis=0)
        runs.append(time.perf_counter() - t)
    rec.add("plaintext@inprocess", "values_per_s", [h * v / s for s in runs], "values/s")

    for case, (backend, column) in CASES.items():
        vectors = data[column] if backend is not Backend.PAILLIER else [x[:naive_v] for x in data[column]]
        n = len(vectors[0])
        outs = [inprocess(case, vectors, PLACES[column], backend) for _ in range(reps)]
        name = f"{case}@inprocess"
        rec.add(name, "values_per_s", [h * n / o["seconds"] for o in outs], "values/s", n=n)
        for metric in ("keygen", "encrypt", "aggregate", "decrypt"):
            rec.add(name, f"{metric}_seconds", [o[metric] for o in outs], "s", n=n)
        rec.add(name, "bytes_per_value", [o["bytes_per_value"] for o in outs], "bytes", n=n)
        rec.add(name, "max_abs_error", [o["max_abs_error"] for o in outs], "abs", n=n)
        print(f"  {name}: {rec.get(name, 'values_per_s'):.4g} values/s", flush=True)

    # The same jobs through a gateway twice: as deployed (mutual TLS, signed jobs, signed receipts)
    # and --insecure (plaintext, no signatures), so the cost of the safety layer is measured in one run.
    for where, insecure in (("gateway", False), ("gateway-insecure", True)):
        with Cluster(h, write_holder(data, naive_v), insecure=insecure) as cluster, \
                cluster.client("bench") as client:
            for case, (backend, column) in CASES.items():
                dataset = "bench_small" if backend is Backend.PAILLIER else "bench"
                n = naive_v if backend is Backend.PAILLIER else v
                truth = np.sum([x[:n] for x in data[column]], axis=0)
                outs = [through_gateway(client, case, dataset, column, backend, truth, PLACES[column])
                        for _ in range(reps)]
                name = f"{case}@{where}"
                rec.add(name, "values_per_s", [h * n / o["seconds"] for o in outs], "values/s", n=n)
                rec.add(name, "seconds", [o["seconds"] for o in outs], "s", n=n)
                rec.add(name, "max_abs_error", [o["max_abs_error"] for o in outs], "abs", n=n)
                print(f"  {name}: {rec.get(name, 'seconds'):.3f} s", flush=True)
    rec.add("benchmark", "peak_rss_mib", [peak_rss_mib()], "MiB")
    rec.add("party-and-gateway-processes", "peak_rss_mib", [peak_rss_mib(children=True)], "MiB")

    naive = rec.get("paillier-naive@inprocess", "values_per_s")
    packed = rec.get("paillier-packed@inprocess", "values_per_s")
    rec.check("packed_vs_naive_paillier_speedup", packed / naive if naive and packed else None, ">= 50",
              lambda x: x >= 50)
    gw = rec.get("ckks@gateway", "seconds")
    ip = rec.get("ckks@inprocess", "values_per_s")
    ratio = gw / (h * v / ip) if gw and ip else None
    rec.check("ckks_gateway_over_inprocess_time", ratio, "<= 1.5", lambda x: x <= 1.5)
    for case in ("ckks", "bfv"):
        rec.check(f"{case}_bytes_per_value", rec.get(f"{case}@inprocess", "bytes_per_value"), "<= 40",
                  lambda x: x <= 40)
    rec.check("ckks_10x100k_gateway_seconds", gw if not quick else None, "< 3 (full run)", lambda x: x < 3)
    for case in CASES:
        secure, plain = rec.get(f"{case}@gateway", "seconds"), rec.get(f"{case}@gateway-insecure", "seconds")
        rec.check(f"{case}_tls_and_signing_over_insecure_time", secure / plain if secure and plain else None,
                  "<= 1.25", lambda x: x <= 1.25)
    return rec
