"""python -m benchmarks NAME [--quick] [--json FILE]   (NAME: aggregate, ..., load, or all)

`load` takes its own options (--duration, --buyers, --holders, --store, --replicas, --profile, ...)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from benchmarks.harness import RESULTS_DIR, BenchmarkFailed

BENCHMARKS = ("aggregate", "psi", "ledger", "dp", "market", "load")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=(*BENCHMARKS, "all"), help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute: a smoke test")
    parser.add_argument("--json", type=Path, default=None, help="also write the record here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help=f"where records accumulate (default {RESULTS_DIR})")
    parser.add_argument("--large", default="", help="psi only: the streamed intersection alone at these log2 sizes "
                                                    "per side, e.g. 20,22 (peak RSS per process beside the time)")
    load = parser.add_argument_group("load", "options of the load benchmark")
    load.add_argument("--duration", type=float, help="seconds the buyers run (default 30; --quick 3)")
    load.add_argument("--buyers", type=int, help="concurrent buyers, each with its own certificate (default 50)")
    load.add_argument("--holders", type=int, help="holder processes (default 5)")
    load.add_argument("--store", help="the second gateway configuration's store: postgresql (default: a server "
                                      "started for the run), a postgresql://... URL, or sqlite for none (the "
                                      "sqlite one-gateway configuration always runs first)")
    load.add_argument("--replicas", type=int, help="gateway replicas of the second configuration (default 2)")
    load.add_argument("--backend", help="the aggregates' backend (default auto, as a buyer's client picks)")
    load.add_argument("--key-reuse", type=float, dest="key_reuse_s",
                      help="seconds each buyer reuses a Paillier key (Client(key_reuse_s=...); default 0: one per job)")
    load.add_argument("--buyer-processes", type=int,
                      help="processes the buyers' threads are spread over (default 2; 0: threads in this process)")
    load.add_argument("--profile", action="store_true",
                      help="say where the time goes: latency by stage (gateway store timings) and CPU by process")
    args = parser.parse_args(argv)
    names = BENCHMARKS if args.name == "all" else (args.name,)
    load_options = {k: v for k, v in (("duration", args.duration), ("buyers", args.buyers),
                                      ("holders", args.holders), ("store", args.store),
                                      ("replicas", args.replicas), ("backend", args.backend),
                                      ("buyer_processes", args.buyer_processes),
                                      ("key_reuse_s", args.key_reuse_s)) if v is not None}
    if args.profile:
        load_options["profile"] = True
    if load_options and "load" not in names:
        parser.error(f"{', '.join('--' + k.replace('_', '-') for k in load_options)} apply to the load benchmark only")
    status = 0
    for name in names:
        print(f"benchmark {name}{' (quick)' if args.quick else ''}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        try:
            extra = load_options if name == "load" else {"large": args.large} if name == "psi" and args.large else {}
            record = module.run(quick=args.quick, **extra)
        except BenchmarkFailed as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            status = 1
            continue
        json_path = args.json if args.json is None or len(names) == 1 else args.json.with_name(
            f"{args.json.stem}-{name}{args.json.suffix}")
        path = record.write(json_path, args.results_dir)
        print(record.table())
        print(f"record written to {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
