"""``canonflow bench``: speed of canonflow's layers against their peers (forward + backward, batch 1024).

Timed with ``torch.utils.benchmark`` (median of adaptive runs, at least ``min_run_time`` seconds each):

1. ``canonical_flow(n)`` vs an nflows flow of additive (NICE) couplings with the same number of blocks and
   hidden width, at 2n ∈ {4, 32, 128, 512}, with input validation on and off;
2. ``IrrotationalMLP`` vs ``GradientField`` of an equally deep MLP (two hidden layers of the same width),
   forward + backward through the field, at widths {64, 256, 1024};
3. diagonal ``LinearSymplectic`` vs ``MatrixExpSymplectic`` at 2n ∈ {32, 256, 1024}.

``--quick`` uses the two smallest sizes of each and 0.05 s per timing. Results: ``machine``, ``batch``,
``dtype``, ``device`` and the rows ``flows``, ``fields`` and ``linear`` (times in ms; ``speedup`` = peer time /
canonflow time); figure ``figures/speedups.png``. :func:`canonflow.benchmark.measure` does the timing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.benchmark import TITLES, measure, tables
from canonflow.cli.options import COMMON_OPTIONS, Option, complete
from canonflow.cli.run import Command
from canonflow.cli.run_directory import Run
from canonflow.plots import plot_bars

__all__ = ["COMMAND", "OPTIONS", "measure", "report", "run"]

OPTIONS = (
    Option("min_run_time", None, "seconds per timing", kind=float, default_text="1.0, 0.05 with --quick"),
    *(option for option in COMMON_OPTIONS if option.name != "dtype"),
    Option("dtype", "float32", "floating dtype of inputs and layers", choices=("float32", "float64")),
)


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Measure per ``config``; write ``figures/speedups.png`` to ``run``'s directory; return the results."""
    config = complete(OPTIONS, config)
    torch.manual_seed(config["seed"])
    results = measure(config["quick"], config["min_run_time"], config["dtype"], config["device"])
    if run.writes:
        axes = (("flows", "2n"), ("fields", "width"), ("linear", "2n"))
        panels = [
            (
                TITLES[key].split(" (")[0],
                [str(row[x]) for row in results[key]],
                [row["speedup"] for row in results[key]],
                x,
            )
            for key, x in axes
        ]
        plot_bars(panels, "peer time / canonflow time", run.figures() / "speedups.png")
    return results


def report(results: dict[str, Any]) -> list[str]:
    """The markdown tables ``canonflow bench`` prints."""
    return tables(results)


COMMAND = Command(
    name="bench",
    help="time canonflow's layers against their peers",
    description=__doc__,
    options=OPTIONS,
    run=run,
    report=report,
    resumable=False,
)
