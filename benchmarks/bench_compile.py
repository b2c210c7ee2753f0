"""``torch.compile`` on canonical flows: eager vs compiled time per training step, and the compile time it costs.

Side by side in one process, float32 on the CPU, batch 1024, forward + backward of ``canonical_flow(n, blocks=4,
hidden=64)`` (``canonflow.benchmark.flow_step``) and of an nflows NICE flow of the same blocks and width, each
eager and compiled (inductor, ``mode="default"``); ``compile_s`` is the first compiled step's wall time (tracing and
code generation). Run: ``python benchmarks/bench_compile.py [--out benchmarks/results/bench_compile.json]
[--sizes 4 32 128]``; report the load average beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import canonflow
from canonflow.benchmark import flow_step, nice_flow, seconds
from canonflow.builders import canonical_flow

BATCH = 1024


def compiled_step(transform: torch.nn.Module, x: torch.Tensor) -> tuple[float, object]:
    """The compiled module's training step and the seconds its first call took (compilation included)."""
    step = flow_step(torch.compile(transform), x)
    started = time.perf_counter()
    step()
    return time.perf_counter() - started, step


def row(dim: int, min_run_time: float) -> dict[str, float]:
    """Timings at phase-space dimension ``dim``."""
    torch.manual_seed(0)
    x = torch.randn(BATCH, dim)
    ours, peer = canonical_flow(dim // 2, blocks=4, hidden=64), nice_flow(dim, 4, 64)
    torch.compiler.reset()
    ours_compile, ours_compiled = compiled_step(ours, x)
    peer_compile, peer_compiled = compiled_step(peer, x)
    found = {
        "2n": dim,
        "canonflow_eager_ms": 1e3 * seconds(flow_step(ours, x), min_run_time),
        "canonflow_compiled_ms": 1e3 * seconds(ours_compiled, min_run_time),
        "canonflow_compile_s": ours_compile,
        "nice_eager_ms": 1e3 * seconds(flow_step(peer, x), min_run_time),
        "nice_compiled_ms": 1e3 * seconds(peer_compiled, min_run_time),
        "nice_compile_s": peer_compile,
    }
    found["compiled_speedup"] = found["canonflow_eager_ms"] / found["canonflow_compiled_ms"]
    found["compiled_vs_fastest_nice"] = (
        min(found["nice_eager_ms"], found["nice_compiled_ms"]) / found["canonflow_compiled_ms"]
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/bench_compile.json")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 32, 128])
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    rows = [row(dim, args.min_run_time) for dim in args.sizes]
    results = {
        "torch": torch.__version__,
        "canonflow": canonflow.__version__,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "batch": BATCH,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for found in rows:
        print(", ".join(f"{key} {value:.3g}" for key, value in found.items()))


if __name__ == "__main__":
    main()
