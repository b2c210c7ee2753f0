"""Speed of canonflow's layers against their peers (forward + backward, batch 1024): :func:`measure`.

Timed with ``torch.utils.benchmark`` (median of adaptive runs, at least ``min_run_time`` seconds each):

1. ``canonical_flow(n)`` vs an nflows flow of additive (NICE) couplings with the same number of blocks and
   hidden width, at 2n ∈ {4, 32, 128, 512}, with input validation on and off;
2. ``IrrotationalMLP`` vs ``GradientField`` of an equally deep MLP (two hidden layers of the same width),
   forward + backward through the field, at widths {64, 256, 1024};
3. diagonal ``LinearSymplectic`` vs ``MatrixExpSymplectic`` at 2n ∈ {32, 256, 1024}.

``quick`` uses the two smallest sizes of each and 0.05 s per timing. ``canonflow bench`` and
``benchmarks/bench_layers.py`` run it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import torch
from nflows.transforms import AdditiveCouplingTransform, CompositeTransform, ReversePermutation
from torch import nn
from torch.utils import benchmark

import canonflow
from canonflow.builders import canonical_flow
from canonflow.nn import MLP, GradientField, IrrotationalMLP
from canonflow.transforms import LinearSymplectic, MatrixExpSymplectic

__all__ = ["BATCH", "TITLES", "measure", "nice_flow", "speedup_panels", "table", "tables"]

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


def seconds(fn: Callable[[], None], min_run_time: float) -> float:
    """Median seconds per call of ``fn``."""
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def flow_step(transform: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """One forward + backward pass of a transform."""

    def run() -> None:
        y, logabsdet = transform(x)
        (y.square().sum() - logabsdet.sum()).backward()

    return run


def field_step(field: nn.Module, q: torch.Tensor) -> Callable[[], None]:
    """One forward + backward pass of a gradient field."""

    def run() -> None:
        field(q).square().sum().backward()

    return run


def bench_flows(
    min_run_time: float, sizes: list[int], like: dict[str, Any], blocks: int = 4, hidden: int = 64
) -> list[dict]:
    """Rows of ``canonical_flow`` vs NICE timings; ``like`` holds the ``dtype`` and ``device`` of the tensors."""
    rows = []
    for dim in sizes:
        torch.manual_seed(0)
        x = torch.randn(BATCH, dim, **like)
        ours = canonical_flow(dim // 2, blocks=blocks, hidden=hidden).to(**like)
        peer = nice_flow(dim, blocks, hidden).to(**like)
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


def bench_fields(min_run_time: float, widths: list[int], like: dict[str, Any], n: int = 32) -> list[dict]:
    """Rows of ``IrrotationalMLP`` vs autograd ``GradientField`` timings."""
    rows = []
    for width in widths:
        torch.manual_seed(0)
        q = torch.randn(BATCH, n, **like)
        irrotational = IrrotationalMLP(n, width)
        nn.init.normal_(irrotational.w2)
        autograd = GradientField(MLP(n, 1, hidden=width, depth=2, output_bias=False), n)
        t_irr = seconds(field_step(irrotational.to(**like), q), min_run_time)
        t_auto = seconds(field_step(autograd.to(**like), q), min_run_time)
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


def bench_linear(min_run_time: float, sizes: list[int], like: dict[str, Any]) -> list[dict]:
    """Rows of diagonal ``LinearSymplectic`` vs ``MatrixExpSymplectic`` timings."""
    rows = []
    for dim in sizes:
        torch.manual_seed(0)
        x = torch.randn(BATCH, dim, **like)
        nak, expm = LinearSymplectic(dim // 2), MatrixExpSymplectic(dim // 2)
        nn.init.normal_(expm.weight, std=0.01)
        t_nak = seconds(flow_step(nak.to(**like), x), min_run_time)
        t_exp = seconds(flow_step(expm.to(**like), x), min_run_time)
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


def measure(
    quick: bool = False, min_run_time: float | None = None, dtype: str = "float32", device: str = "cpu"
) -> dict[str, Any]:
    """All three comparisons (the results of the module docstring)."""
    like = {"dtype": getattr(torch, dtype), "device": torch.device(device)}
    min_run_time = min_run_time if min_run_time is not None else 0.05 if quick else 1.0
    return {
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "batch": BATCH,
        "dtype": dtype,
        "device": device,
        "min_run_time": min_run_time,
        "flows": bench_flows(min_run_time, [4, 32] if quick else [4, 32, 128, 512], like),
        "fields": bench_fields(min_run_time, [64, 256] if quick else [64, 256, 1024], like),
        "linear": bench_linear(min_run_time, [32, 256] if quick else [32, 256, 1024], like),
    }


def table(title: str, rows: list[dict]) -> str:
    """A markdown table of ``rows`` under a ``### title``."""
    keys = list(rows[0])
    lines = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


TITLES = {
    "flows": "canonical_flow vs nflows NICE (forward + backward)",
    "fields": "IrrotationalMLP vs autograd GradientField (forward + backward)",
    "linear": "LinearSymplectic (diagonal) vs MatrixExpSymplectic (forward + backward)",
}


def tables(results: dict[str, Any]) -> list[str]:
    """The markdown tables of :func:`measure`'s results, one per comparison, each followed by an empty line."""
    return [line for key, title in TITLES.items() for line in (table(title, results[key]), "")]


def speedup_panels(results: dict[str, Any]) -> list[tuple[str, list[str], list[float], str]]:
    """The ``speedup`` of every row of :func:`measure`'s results, one ``(title, sizes, speedups, size name)``
    panel per comparison (what :func:`canonflow.plots.plot_bars` draws)."""
    axes = {"flows": "2n", "fields": "width", "linear": "2n"}
    return [
        (TITLES[key].split(" (")[0], [str(row[x]) for row in results[key]], [row["speedup"] for row in results[key]], x)
        for key, x in axes.items()
    ]
