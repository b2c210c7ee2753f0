"""Peak memory and time of one training step of ImplicitMidpointFlow: discrete adjoint vs backpropagation.

Each configuration (number of steps L, gradient mode) runs in a fresh subprocess, so allocations of one
cannot hide in the allocator caches of another. In the subprocess, after building the layer and the data
and after a tiny warm-up step, the resident-set high-water mark ``VmHWM`` is reset (``/proc/self/clear_refs``
with ``5``) and the peak memory of the step is ``VmHWM`` after the step minus ``VmRSS`` before it. glibc is
told to serve allocations of 64 KiB and more with ``mmap`` (``MALLOC_MMAP_THRESHOLD_``), so freed tensors
leave the resident set at once and the peak reflects the autograd graph rather than allocator caching.

With ``--loss trajectory`` the step is instead the one of trajectory matching in
``canonflow.hamiltonian_learning``: a loss on every state, through ``implicit_midpoint(..., trajectory=True)``
(backprop) vs ``implicit_midpoint_adjoint(..., loss=...)`` (adjoint, the loss accumulated state by state).

Usage: ``python benchmarks/bench_adjoint.py [--out benchmarks/results/bench_adjoint.json] [--loss trajectory]``.
Prints a markdown table with the peak memory at each L relative to L = 4.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "bench_adjoint.json"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def worker(args: argparse.Namespace) -> dict:
    """Run one configuration in this process and return its measurements."""
    import gc

    import torch

    from canonflow.integrators import implicit_midpoint, implicit_midpoint_adjoint
    from canonflow.nn import MLP
    from canonflow.transforms.hamiltonian_flows import ImplicitMidpointFlow

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    n = args.n
    hamiltonian = MLP(2 * n, 1, args.hidden, args.depth)
    layer = ImplicitMidpointFlow(
        n, hamiltonian, steps=args.steps, step_size=args.step_size, adjoint=args.mode == "adjoint", tol=args.tol
    ).to(dtype)
    x = torch.randn(args.batch, 2 * n, dtype=dtype)

    def training_step(inputs: torch.Tensor) -> float:
        layer.zero_grad(set_to_none=True)
        if args.loss == "trajectory":
            # Trajectory matching (canonflow.hamiltonian_learning): all L + 1 states enter the loss; the adjoint
            # accumulates it state by state, backprop keeps the trajectory.
            scale = 0.5 / (inputs.shape[0] * (args.steps + 1))
            if args.mode == "adjoint":
                loss = implicit_midpoint_adjoint(
                    hamiltonian,
                    inputs,
                    args.step_size,
                    args.steps,
                    loss=lambda k, x: scale * (x**2).sum(),
                    tol=args.tol,
                )
            else:
                path = implicit_midpoint(hamiltonian, inputs, args.step_size, args.steps, trajectory=True, tol=args.tol)
                loss = scale * (path**2).sum()
        else:
            y, _ = layer(inputs)
            loss = 0.5 * (y**2).sum(-1).mean()
        loss.backward()
        return loss.item()

    training_step(x[:16])  # warm-up: lazy initialisation, thread pools
    layer.zero_grad(set_to_none=True)
    gc.collect()
    baseline = _status_kib("VmRSS")
    reset = _reset_high_water_mark()
    start = time.perf_counter()
    training_step(x)
    first_time = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    times = [first_time]
    for _ in range(args.repeats - 1):
        start = time.perf_counter()
        training_step(x)
        times.append(time.perf_counter() - start)
    return {
        "steps": args.steps,
        "mode": args.mode,
        "peak_increase_mib": (peak - baseline) / 1024.0,
        "baseline_rss_mib": baseline / 1024.0,
        "hwm_reset": reset,
        "time_s": min(times),
        "residual": layer.last_residual,
    }


def run_configuration(args: argparse.Namespace, steps: int, mode: str) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--mode",
        mode,
        "--steps",
        str(steps),
        *(f"--{k.replace('_', '-')}={v}" for k, v in _shared(args).items()),
    ]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(args.threads))
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"configuration L={steps} {mode} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _shared(args: argparse.Namespace) -> dict:
    keys = ("batch", "n", "hidden", "depth", "step_size", "tol", "dtype", "threads", "repeats", "loss")
    return {k: getattr(args, k) for k in keys}


def markdown(results: list[dict], lengths: list[int]) -> str:
    by = {(r["mode"], r["steps"]): r for r in results}
    base = {mode: by[(mode, lengths[0])]["peak_increase_mib"] for mode in ("backprop", "adjoint")}
    lines = [
        f"| L | backprop peak (MiB) | × vs L={lengths[0]} | backprop time (s) "
        f"| adjoint peak (MiB) | × vs L={lengths[0]} | adjoint time (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for steps in lengths:
        b, a = by[("backprop", steps)], by[("adjoint", steps)]
        lines.append(
            f"| {steps} | {b['peak_increase_mib']:.1f} | {b['peak_increase_mib'] / base['backprop']:.2f} "
            f"| {b['time_s']:.2f} | {a['peak_increase_mib']:.1f} | {a['peak_increase_mib'] / base['adjoint']:.2f} "
            f"| {a['time_s']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--lengths", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--step-size", type=float, default=0.1)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--loss",
        choices=["endpoint", "trajectory"],
        default="endpoint",
        help="endpoint: ImplicitMidpointFlow layer, loss on x_L; trajectory: a loss on every state, as in "
        "fit_hamiltonian's trajectory matching",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["backprop", "adjoint"], help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    results = []
    for steps in args.lengths:
        for mode in ("backprop", "adjoint"):
            results.append(run_configuration(args, steps, mode))
            print(f"L={steps:3d} {mode:8s} {results[-1]}", file=sys.stderr)
    import torch

    report = {
        "benchmark": "ImplicitMidpointFlow one training step (forward + backward of 0.5·mean|y|²), CPU"
        if args.loss == "endpoint"
        else "trajectory matching: one training step, forward + backward of 0.5·mean over all L + 1 states of "
        "|x_k|² (backprop: implicit_midpoint(trajectory=True); adjoint: implicit_midpoint_adjoint(loss=...)), CPU",
        "memory_method": "fresh subprocess per configuration; VmHWM after the step minus VmRSS before it, "
        "high-water mark reset via /proc/self/clear_refs; MALLOC_MMAP_THRESHOLD_=65536",
        "config": _shared(args),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(results, args.lengths))


if __name__ == "__main__":
    main()
