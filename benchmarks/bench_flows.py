"""Canonical flows against nflows and zuko coupling flows of equal size, side by side in one process (issue #19).

float32, on the CPU (or ``--device cuda``). For each phase-space dimension 2n and batch size B:

- ``canonical_flow(n, blocks=4, hidden=64)`` eager and compiled (``torch.compile``, inductor, ``dynamic=True`` so that
  one compilation per direction serves every batch size; ``compile_s``: the first compiled calls' wall time);
- nflows NICE (``canonflow.benchmark.nice_flow``: 4 blocks of a reversal and two additive couplings, two hidden
  layers of width 64), zuko ``NICE`` and zuko ``RealNVP`` with ``transforms=8`` couplings of two hidden layers of
  width 64, all eager;
- ``*_train_ms``: one forward + backward of ``|y|² − log|det J|`` (a maximum-likelihood step);
  ``*_sample_ms``: the inverse map of a ``(B, 2n)`` latent batch under ``torch.no_grad`` (sampling without the
  base draw);
- ``gflops``: the FLOPs of canonflow's step (``torch.utils.flop_counter.FlopCounterMode``: matrix products only)
  divided by its time, beside ``peak_gflops``, the measured float32 ``torch.mm`` rate of 2048 × 2048 products.

Run: ``python benchmarks/bench_flows.py [--quick] [--sizes 2 4 8 32 128 512] [--batches 256 1024 4096]
[--device cuda] [--out benchmarks/results/bench_flows.json]`` under ``flock /tmp/canonflow-cpu.lock``; the JSON
records the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import zuko
from torch.utils.flop_counter import FlopCounterMode

import canonflow
from canonflow.benchmark import flow_step, nice_flow, seconds
from canonflow.builders import canonical_flow

BLOCKS, HIDDEN = 4, 64


def matmul_peak(min_run_time: float, device: torch.device, size: int = 2048) -> float:
    """GFLOP/s of a float32 ``(size, size) @ (size, size)`` product (``2 size³`` FLOPs) on ``device``."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return 2 * size**3 / seconds(lambda: torch.mm(a, b), min_run_time) / 1e9


def flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of ``step`` (matrix products, as ``FlopCounterMode`` counts them)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def sampler(inverse: Callable[[torch.Tensor], object], z: torch.Tensor) -> Callable[[], None]:
    """The inverse map of ``z`` without gradients (sampling from a fixed latent batch)."""

    def run() -> None:
        with torch.no_grad():
            inverse(z)

    return run


def zuko_step(flow: zuko.flows.Flow, x: torch.Tensor) -> Callable[[], None]:
    """One forward + backward of a zuko flow's transform (``|y|² − log|det J|``)."""

    def run() -> None:
        y, ladj = flow.transform().call_and_ladj(x)
        (y.square().sum() - ladj.sum()).backward()

    return run


def timed_first(fn: Callable[[], None]) -> float:
    """Wall seconds of one call (a compiled function's first call: compilation included)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def size_rows(dim: int, batches: list[int], min_run_time: float, device: torch.device) -> list[dict[str, float]]:
    """Rows at phase-space dimension ``dim``, one per batch size, every flow and batch on ``device``."""
    torch.manual_seed(0)
    ours = canonical_flow(dim // 2, blocks=BLOCKS, hidden=HIDDEN).to(device)
    nice = nice_flow(dim, BLOCKS, HIDDEN).to(device)
    peers = {
        "zuko_nice": zuko.flows.NICE(dim, transforms=2 * BLOCKS, hidden_features=(HIDDEN, HIDDEN)).to(device),
        "zuko_realnvp": zuko.flows.RealNVP(dim, transforms=2 * BLOCKS, hidden_features=(HIDDEN, HIDDEN)).to(device),
    }
    torch.compiler.reset()
    forward = torch.compile(ours, dynamic=True)
    inverse = torch.compile(ours.inverse, dynamic=True)
    rows = []
    for batch in batches:
        x, z = torch.randn(batch, dim, device=device), torch.randn(batch, dim, device=device)
        found: dict[str, float] = {"2n": dim, "batch": batch}
        compile_s = timed_first(flow_step(forward, x)) + timed_first(sampler(inverse, z))
        found["canonflow_compile_s"] = compile_s
        found["canonflow_eager_train_ms"] = 1e3 * seconds(flow_step(ours, x), min_run_time)
        found["canonflow_compiled_train_ms"] = 1e3 * seconds(flow_step(forward, x), min_run_time)
        found["nflows_nice_train_ms"] = 1e3 * seconds(flow_step(nice, x), min_run_time)
        for name, peer in peers.items():
            found[f"{name}_train_ms"] = 1e3 * seconds(zuko_step(peer, x), min_run_time)
        found["canonflow_eager_sample_ms"] = 1e3 * seconds(sampler(ours.inverse, z), min_run_time)
        found["canonflow_compiled_sample_ms"] = 1e3 * seconds(sampler(inverse, z), min_run_time)
        found["nflows_nice_sample_ms"] = 1e3 * seconds(sampler(nice.inverse, z), min_run_time)
        for name, peer in peers.items():
            found[f"{name}_sample_ms"] = 1e3 * seconds(sampler(lambda w, p=peer: p.transform().inv(w), z), min_run_time)
        train_flops = flops(flow_step(ours, x))
        for mode in ("eager", "compiled"):
            found[f"canonflow_{mode}_train_gflops"] = train_flops / found[f"canonflow_{mode}_train_ms"] / 1e6
        fastest_nice = min(found["nflows_nice_train_ms"], found["zuko_nice_train_ms"])
        found["eager_vs_fastest_nice"] = fastest_nice / found["canonflow_eager_train_ms"]
        found["compiled_vs_fastest_nice"] = fastest_nice / found["canonflow_compiled_train_ms"]
        found["params_canonflow"] = sum(p.numel() for p in ours.parameters())
        found["params_nflows_nice"] = sum(p.numel() for p in nice.parameters())
        found["params_zuko_nice"] = sum(p.numel() for p in peers["zuko_nice"].parameters())
        rows.append(found)
        print(", ".join(f"{key} {value:.3g}" for key, value in found.items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/bench_flows.json")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8, 32, 128, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--min-run-time", type=float, default=0.3)
    parser.add_argument("--quick", action="store_true", help="2n ∈ {4, 32}, batch 1024, 0.05 s per timing")
    parser.add_argument("--device", default="cpu", help="torch device of every flow and batch (default: cpu)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.quick:
        args.sizes, args.batches, args.min_run_time = [4, 32], [1024], 0.05
    load_before = os.getloadavg()
    peak = matmul_peak(args.min_run_time, device)
    rows = [row for dim in args.sizes for row in size_rows(dim, args.batches, args.min_run_time, device)]
    results = {
        "torch": torch.__version__,
        "canonflow": canonflow.__version__,
        "zuko": zuko.__version__,
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "min_run_time": args.min_run_time,
        "peak_gflops": peak,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"peak {peak:.3g} GFLOP/s; load {load_before} -> {results['load_average_after']}")


if __name__ == "__main__":
    main()
