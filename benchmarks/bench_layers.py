"""Speed of canonflow's layers against their peers (issue 2). Prints a table and writes JSON.

All in one process, float32, batch 1024, timed with ``torch.utils.benchmark`` (median of adaptive runs):

1. forward + backward of ``canonical_flow(n)`` vs an nflows flow of additive (NICE) couplings with the same
   number of blocks and hidden width, at 2n ∈ {4, 32, 128, 512}, with input validation on and off;
2. ``IrrotationalMLP`` vs ``GradientField`` of an equally deep MLP (two hidden layers of the same width),
   forward + backward through the field, at widths {64, 256, 1024};
3. diagonal ``LinearSymplectic`` vs ``MatrixExpSymplectic``, forward + backward, at 2n ∈ {32, 256, 1024}.

Run: ``python benchmarks/bench_layers.py [--out benchmarks/results/bench_layers.json] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from nflows.transforms import AdditiveCouplingTransform, CompositeTransform, ReversePermutation
from torch import nn
from torch.utils import benchmark

import canonflow
from canonflow import canonical_flow
from canonflow.nn import MLP, GradientField, IrrotationalMLP
from canonflow.transforms import LinearSymplectic, MatrixExpSymplectic

BATCH = 1024


class CouplingNet(nn.Module):
    """The coupling network of the NICE peer: two hidden layers of width ``hidden`` (nflows passes a context)."""

    def __init__(self, in_features: int, out_features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


def nice_flow(dim: int, blocks: int, hidden: int) -> CompositeTransform:
    """nflows additive couplings: per block a reversal and two couplings with alternating masks."""
    mask = torch.arange(dim) % 2
    layers = []
    for _ in range(blocks):
        layers.append(ReversePermutation(dim))
        for m in (mask, 1 - mask):
            layers.append(AdditiveCouplingTransform(m, lambda i, o: CouplingNet(i, o, hidden)))
    return CompositeTransform(layers)


def seconds(fn, min_run_time: float) -> float:
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def flow_step(transform: nn.Module, x: torch.Tensor):
    def run() -> None:
        y, logabsdet = transform(x)
        (y.square().sum() - logabsdet.sum()).backward()

    return run


def field_step(field: nn.Module, q: torch.Tensor):
    def run() -> None:
        field(q).square().sum().backward()

    return run


def bench_flows(min_run_time: float, sizes: list[int], blocks: int = 4, hidden: int = 64) -> list[dict]:
    rows = []
    for dim in sizes:
        torch.manual_seed(0)
        x = torch.randn(BATCH, dim)
        ours, peer = canonical_flow(dim // 2, blocks=blocks, hidden=hidden), nice_flow(dim, blocks, hidden)
        t_ours = seconds(flow_step(ours, x), min_run_time)
        with canonflow.validation(False):
            t_fast = seconds(flow_step(ours, x), min_run_time)
        t_peer = seconds(flow_step(peer, x), min_run_time)
        rows.append(
            {
                "2n": dim,
                "canonflow_ms": 1e3 * t_ours,
                "canonflow_no_validation_ms": 1e3 * t_fast,
                "nflows_nice_ms": 1e3 * t_peer,
                "speedup": t_peer / t_ours,
                "speedup_no_validation": t_peer / t_fast,
                "params_canonflow": sum(p.numel() for p in ours.parameters()),
                "params_nice": sum(p.numel() for p in peer.parameters()),
            }
        )
    return rows


def bench_fields(min_run_time: float, widths: list[int], n: int = 32) -> list[dict]:
    rows = []
    for width in widths:
        torch.manual_seed(0)
        q = torch.randn(BATCH, n)
        irrotational = IrrotationalMLP(n, width)
        nn.init.normal_(irrotational.w2)
        autograd = GradientField(MLP(n, 1, hidden=width, depth=2, output_bias=False), n)
        t_irr = seconds(field_step(irrotational, q), min_run_time)
        t_auto = seconds(field_step(autograd, q), min_run_time)
        rows.append(
            {
                "width": width,
                "n": n,
                "irrotational_ms": 1e3 * t_irr,
                "autograd_ms": 1e3 * t_auto,
                "speedup": t_auto / t_irr,
            }
        )
    return rows


def bench_linear(min_run_time: float, sizes: list[int]) -> list[dict]:
    rows = []
    for dim in sizes:
        torch.manual_seed(0)
        x = torch.randn(BATCH, dim)
        nak, expm = LinearSymplectic(dim // 2), MatrixExpSymplectic(dim // 2)
        nn.init.normal_(expm.weight, std=0.01)
        t_nak = seconds(flow_step(nak, x), min_run_time)
        t_exp = seconds(flow_step(expm, x), min_run_time)
        rows.append(
            {
                "2n": dim,
                "householder": nak.householder,
                "nak_ms": 1e3 * t_nak,
                "matrix_exp_ms": 1e3 * t_exp,
                "speedup": t_exp / t_nak,
            }
        )
    return rows


def table(title: str, rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/bench_layers.json")
    parser.add_argument("--quick", action="store_true", help="shorter timing runs and fewer sizes")
    args = parser.parse_args()
    min_run_time = 0.05 if args.quick else 1.0
    results = {
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "batch": BATCH,
        "dtype": "float32",
        "flows": bench_flows(min_run_time, [4, 32] if args.quick else [4, 32, 128, 512]),
        "fields": bench_fields(min_run_time, [64, 256] if args.quick else [64, 256, 1024]),
        "linear": bench_linear(min_run_time, [32, 256] if args.quick else [32, 256, 1024]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table("canonical_flow vs nflows NICE (forward + backward)", results["flows"]))
    print()
    print(table("IrrotationalMLP vs autograd GradientField (forward + backward)", results["fields"]))
    print()
    print(table("LinearSymplectic (diagonal) vs MatrixExpSymplectic (forward + backward)", results["linear"]))


if __name__ == "__main__":
    main()
