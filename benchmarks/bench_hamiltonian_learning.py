"""Time per optimizer step of ``fit_hamiltonian``'s modes at equal data, side by side in one process.

Every mode fits the same model size to the same pendulum trajectories, and every optimizer step sees the same number
of observed target states ``G``: derivative fitting draws ``G`` pairs ``[x, ẋ]``; the trajectory modes draw ``G / k``
windows of ``k`` intervals (``k`` predicted states each). The modes run in interleaved rounds (each round runs every
mode for ``--steps`` optimizer steps, after one warm-up round), so a change of the machine's load hits all of them
alike; the median over rounds of each mode's seconds per step is reported, and its ratio to the first mode's
(derivative fitting by default).
``leapfrog`` integrates the windows with ``leapfrog_window`` (closed-form part gradients, differentiated by leapfrog's
hand-written discrete adjoint); ``leapfrog, backprop`` takes the same closed-form part gradients
(``HamiltonianNet.part_gradients``) through the generic integrator and backpropagates through every kick and drift
(canonflow before ``leapfrog_window``); ``leapfrog, full ∇H`` is leapfrog on the same separable model with its parts
hidden, i.e. every kick and drift taking the gradient of both networks (canonflow before the separable-parts path).
The implicit-midpoint modes warm-start their solves (``warm_start=True``,
the default of ``fit_hamiltonian``); ``cold start`` starts every solve from the RK2 predictor. ``H evaluations / step``
counts the model's forward calls per optimizer step (predictor, fixed-point iterations and, for the adjoint, the
backward reconstruction and adjoint solves; the closed-form leapfrog calls none).

Usage: ``python benchmarks/bench_hamiltonian_learning.py [--rounds 5] [--steps 30] [--threads 1]
[--out benchmarks/results/bench_hamiltonian_learning.json]``. Prints a markdown table; writes the JSON with the
load average (``os.getloadavg``) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from canonflow.data import trajectories
from canonflow.hamiltonian_learning import HamiltonianNet, fit_hamiltonian
from canonflow.systems import Pendulum
from canonflow.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "bench_hamiltonian_learning.json"


class WholeGradient(HamiltonianNet):
    """A separable ``HamiltonianNet`` that does not declare its parts: splitting methods take the full ``∇H_θ``."""

    @property
    def separable_parts(self) -> bool:
        return False


class BackpropParts(HamiltonianNet):
    """A separable ``HamiltonianNet`` whose ``part_gradients`` is its own override (the same functions): the windows
    take the generic integrator and backpropagation instead of ``leapfrog_window``."""

    def part_gradients(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        return super().part_gradients()


MODES = {  # label -> (model class, separable, mode, adjoint, warm start)
    "derivative": (HamiltonianNet, False, "derivative", False, False),
    "derivative (separable)": (HamiltonianNet, True, "derivative", False, False),
    "leapfrog": (HamiltonianNet, True, "leapfrog", False, False),
    "leapfrog, backprop": (BackpropParts, True, "leapfrog", False, False),
    "leapfrog, full ∇H": (WholeGradient, True, "leapfrog", False, False),
    "implicit midpoint": (HamiltonianNet, False, "implicit_midpoint", False, True),
    "implicit midpoint, cold start": (HamiltonianNet, False, "implicit_midpoint", False, False),
    "implicit midpoint, adjoint": (HamiltonianNet, False, "implicit_midpoint", True, True),
    "implicit midpoint, adjoint, cold start": (HamiltonianNet, False, "implicit_midpoint", True, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per mode and round")
    parser.add_argument("--targets", type=int, default=256, help="observed target states per step (G)")
    parser.add_argument("--window", type=int, default=8, help="intervals per window (k)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trajectories", type=int, default=64, help="pendulum trajectories of 61 samples")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES), help="default: all")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    system = Pendulum()
    data = trajectories(system, args.trajectories, (6.0, 61), noise_std=0.01, seed=0)
    modes = {label: MODES[label] for label in args.modes}
    models, seconds = {}, {label: [] for label in modes}
    calls = {label: [0, 0] for label in modes}  # forward calls, optimizer steps (after warm-up)
    for label, (cls, separable, _, _, _) in modes.items():
        torch.manual_seed(0)
        models[label] = cls(1, hidden=args.hidden, depth=2, separable=separable, dtype=args.dtype)
        models[label].register_forward_hook(lambda *_, count=calls[label]: count.__setitem__(0, count[0] + 1))
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for label, (_, _, mode, adjoint, warm) in modes.items():
            options = {} if mode == "derivative" else {"window": args.window}
            batch = args.targets if mode == "derivative" else args.targets // args.window
            config = TrainConfig(steps=args.steps, lr=1e-4, progress=False, schedule="constant")
            if round_ == 1:
                calls[label][0] = 0
            began = time.perf_counter()
            result = fit_hamiltonian(
                models[label], data, mode, adjoint=adjoint, batch_size=batch, config=config, warm_start=warm, **options
            )
            elapsed = time.perf_counter() - began
            if round_:
                seconds[label].append(min(elapsed, result.seconds) / result.steps)
                calls[label][1] += result.steps
    load_after = os.getloadavg()
    median = {label: statistics.median(values) for label, values in seconds.items()}
    base = median[args.modes[0]]
    rows = [
        {
            "mode": label,
            "seconds_per_step": median[label],
            "steps_per_second": 1.0 / median[label],
            "ratio_to_first": median[label] / base,
            "hamiltonian_evaluations_per_step": calls[label][0] / calls[label][1],
            "per_round": seconds[label],
        }
        for label in modes
    ]
    print(
        f"G = {args.targets} targets per step, windows of k = {args.window}, hidden {args.hidden}, {args.dtype}, "
        f"{args.threads} thread(s); load average {load_before} -> {load_after}"
    )
    print(f"| mode | ms / step | steps / s | × {args.modes[0]} | H evaluations / step |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['mode']} | {1000 * row['seconds_per_step']:.2f} | {row['steps_per_second']:.0f} | "
            f"{row['ratio_to_first']:.2f} | {row['hamiltonian_evaluations_per_step']:.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "bench_hamiltonian_learning",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "results": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
