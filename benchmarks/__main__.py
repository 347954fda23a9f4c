"""python -m benchmarks NAME [--quick] [--json FILE]   (NAME: aggregate, or all)"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from benchmarks.harness import RESULTS_DIR, BenchmarkFailed

BENCHMARKS = ("aggregate", "psi", "ledger", "dp", "market")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=(*BENCHMARKS, "all"), help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute: a smoke test")
    parser.add_argument("--json", type=Path, default=None, help="also write the record here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help=f"where records accumulate (default {RESULTS_DIR})")
    args = parser.parse_args(argv)
    names = BENCHMARKS if args.name == "all" else (args.name,)
    status = 0
    for name in names:
        print(f"benchmark {name}{' (quick)' if args.quick else ''}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        try:
            record = module.run(quick=args.quick)
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
