"""canonflow bench: time canonflow's layers against their peers (forward + backward, batch 1024).

Canonical flows against nflows additive couplings, IrrotationalMLP against GradientField, diagonal
LinearSymplectic against MatrixExpSymplectic; speedup = peer time / canonflow time. --quick: the two smallest
sizes and 0.05 s per timing. Results: docs/cli-results.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.benchmark import measure, speedup_panels, tables
from canonflow.cli.options import COMMON_OPTIONS, Option, complete
from canonflow.cli.run import command
from canonflow.plots import plot_bars
from canonflow.run_directory import Run

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
        plot_bars(speedup_panels(results), "peer time / canonflow time", run.figures() / "speedups.png")
    return results


report = tables
"""The markdown tables ``canonflow bench`` prints."""


COMMAND = command(__name__, "bench", "time canonflow's layers against their peers", resumable=False)
