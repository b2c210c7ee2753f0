"""Data-parallel throughput (issue 9): ``fit_density`` training steps on 1 vs 2 processes. Prints a table, writes JSON.

The model is ``PhaseSpaceFlow(16, blocks=4, hidden=128, zero_center=True, base="normal")`` on a 32-dimensional
phase space (a correlated Gaussian pushed through a canonical shear), trained with a global batch of 1024 and no
validation, in float32 and float64. Each configuration is launched with ``torchrun --standalone`` (via
``canonflow.distributed.torchrun_command``):

* 1 process with 1 thread, 1 process with 2 threads (the fair single-process baseline on a 2-core machine),
* 2 processes with 1 thread each (gloo, DDP, synchronized ZeroCenter means).

Throughput is ``global batch × steps / seconds`` of the training loop (``TrainResult.seconds``, which includes
the all-reduces), the median of ``--repeats`` timed runs of ``--steps`` steps (or fewer when a run reaches
``--time-limit`` seconds) after one warm-up run. The machine's load average is recorded before and after, since
other jobs on a shared machine slow every configuration down.

Run: ``PYTHONPATH=. python benchmarks/bench_distributed.py [--out benchmarks/results/bench_distributed.json]
[--steps 40] [--repeats 3] [--time-limit 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

import torch

import canonflow
from canonflow.density import PhaseSpaceFlow, fit_density
from canonflow.distributed import close_distributed, context_from_environment, torchrun_command
from canonflow.training import TrainConfig

N = 16
BLOCKS = 4
HIDDEN = 128
GLOBAL_BATCH = 1024
CONFIGURATIONS = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def data(num: int, dtype: torch.dtype) -> torch.Tensor:
    """``num`` points of a correlated Gaussian in ``(q, p)`` with the shear ``p -> p + 0.3 q²``: ``(num, 2N)``."""
    generator = torch.Generator().manual_seed(0)
    mixing = torch.eye(2 * N, dtype=torch.float64) + 0.2 * torch.randn(
        2 * N, 2 * N, generator=generator, dtype=torch.float64
    )
    x = torch.randn(num, 2 * N, generator=generator, dtype=torch.float64) @ mixing.T
    q, p = x[:, :N], x[:, N:]
    return torch.cat([q, p + 0.3 * q**2], dim=1).to(dtype)


def worker(dtype_name: str, threads: int, steps: int, repeats: int, time_limit: float, out: str) -> None:
    """One torchrun rank: warm up, time ``repeats`` fits of ``steps`` steps; rank 0 writes the numbers."""
    torch.set_num_threads(threads)
    context = context_from_environment(timeout_s=120.0)
    dtype = DTYPES[dtype_name]
    torch.manual_seed(0)
    flow = PhaseSpaceFlow(N, blocks=BLOCKS, hidden=HIDDEN, zero_center=True, base="normal").to(dtype)
    points = data(16 * GLOBAL_BATCH, dtype)

    def run(num_steps: int) -> tuple[int, float]:
        config = TrainConfig(steps=num_steps, lr=1e-3, time_limit=time_limit, progress=False, description="bench")
        fit = fit_density(
            flow, points, validation_fraction=0, batch_size=GLOBAL_BATCH, config=config, distributed=context
        )
        return fit.train.steps, fit.train.seconds

    run(3)
    runs = [run(steps) for _ in range(repeats)]
    if context is None or context.is_main:
        rates = [GLOBAL_BATCH * done / seconds for done, seconds in runs]
        result = {"runs": [{"steps": done, "seconds": seconds} for done, seconds in runs]}
        Path(out).write_text(json.dumps({**result, "samples_per_s": statistics.median(rates)}))
    close_distributed()


def launch_configuration(processes: int, threads: int, dtype: str, args: argparse.Namespace) -> dict[str, object]:
    """Run one configuration under torchrun and return its row of the table."""
    with tempfile.TemporaryDirectory() as directory:
        out = str(Path(directory) / "result.json")
        argv = [__file__, "--worker", dtype, "--threads", str(threads), "--steps", str(args.steps)]
        argv += ["--repeats", str(args.repeats), "--time-limit", str(args.time_limit), "--result", out]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        subprocess.run(torchrun_command(processes, argv, module=None), env=env, check=True)
        result = json.loads(Path(out).read_text())
    return {"dtype": dtype, "processes": processes, "threads_per_process": threads, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_distributed.json"))
    parser.add_argument("--steps", type=int, default=40, help="training steps per timed run (default: 40)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (default: 3)")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per timed run at most (default: 10)")
    parser.add_argument("--worker", choices=sorted(DTYPES), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.steps, args.repeats, args.time_limit, args.result)
        return
    load_before = os.getloadavg()
    rows = [
        launch_configuration(processes, threads, dtype, args)
        for dtype in DTYPES
        for processes, threads in CONFIGURATIONS
    ]
    load_after = os.getloadavg()
    for row in rows:
        baseline = next(
            r for r in rows if r["dtype"] == row["dtype"] and r["processes"] == 1 and r["threads_per_process"] == 1
        )
        row["speedup_vs_1x1"] = row["samples_per_s"] / baseline["samples_per_s"]
    report = {
        "benchmark": "fit_density throughput, 1 vs 2 processes (torchrun, gloo)",
        "model": {"n": N, "phase_space_dim": 2 * N, "blocks": BLOCKS, "hidden": HIDDEN, "zero_center": True},
        "global_batch": GLOBAL_BATCH,
        "rows": rows,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "canonflow": canonflow.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"fit_density, 2n = {2 * N}, {BLOCKS} blocks × hidden {HIDDEN}, global batch {GLOBAL_BATCH}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {os.cpu_count()} CPUs")
    print(f"{'dtype':8} {'processes':>9} {'threads':>7} {'samples/s':>10} {'speed-up':>8}")
    for row in rows:
        print(
            f"{row['dtype']:8} {row['processes']:9d} {row['threads_per_process']:7d} "
            f"{row['samples_per_s']:10.0f} {row['speedup_vs_1x1']:8.2f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
