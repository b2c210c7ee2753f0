"""Learn action-angle coordinates of an integrable system with a canonical flow and evaluate them on held-out data.

    python experiments/action_angle.py --system kepler2d --out experiments/results/kepler2d

writes ``metrics.json`` (held-out action conservation, angle R², frequency error, angle independence, training
time, parameter count), ``model.pt`` (``canonflow.load``-able) and figures to ``--out``. See
``canonflow.action_angle.BENCHMARKS`` for the presets.
"""

from __future__ import annotations

import argparse
import json
import logging

import torch

from canonflow.action_angle import BENCHMARKS, run_benchmark

SUMMARY = ("action_conservation", "angle_r2", "frequency_error", "frequency_matched", "angle_independence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", required=True, choices=sorted(BENCHMARKS))
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--quick", action="store_true", help="a short run (a few minutes at most)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training data and model (default: 0)")
    parser.add_argument("--steps", type=int, help="override the number of optimizer steps")
    parser.add_argument("--time-limit", type=float, help="override the training time limit in seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/training.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    overrides = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.time_limit is not None:
        overrides["time_limit"] = args.time_limit
    metrics = run_benchmark(
        args.system,
        args.out,
        quick=args.quick,
        seed=args.seed,
        progress=not args.quiet,
        resume=args.resume,
        overrides=overrides,
    )
    summary = {key: metrics[key] for key in SUMMARY if key in metrics}
    summary["training_seconds"] = round(metrics["training_seconds"], 1)
    summary["parameters"] = metrics["parameters"]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
