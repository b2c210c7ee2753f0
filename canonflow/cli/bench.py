"""canonflow bench: time canonflow's layers against their peers (forward + backward, batch 1024).

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.benchmark import measure, speedup_panels, tables
from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.plots import plot_bars
from canonflow.run_directory import Run

__all__ = ["COMMAND", "OPTIONS", "measure", "report", "run"]

OPTIONS = SUBCOMMANDS["bench"].options


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


COMMAND = command(__name__)
