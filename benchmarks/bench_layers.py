"""Speed of canonflow's layers against their peers (issue 2): ``canonflow bench``, writing the results as JSON.

Run: ``python benchmarks/bench_layers.py [--out benchmarks/results/bench_layers.json] [--quick]``; the
measurements are those of :mod:`canonflow.cli.bench` (float32, CPU, batch 1024).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from canonflow.cli.bench import measure, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/bench_layers.json")
    parser.add_argument("--quick", action="store_true", help="shorter timing runs and fewer sizes")
    args = parser.parse_args()
    results = measure(quick=args.quick)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n".join(report(results)))


if __name__ == "__main__":
    main()
