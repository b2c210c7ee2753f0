"""canonflow demo: learn action-angle coordinates of planar Kepler orbits in a few minutes, or fit a banana density.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli import action_angle
from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.density.reference_runs import banana_checks, banana_draws, run_banana
from canonflow.plots import plot_scatter
from canonflow.presets import load_preset
from canonflow.run_directory import Run
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "report", "run"]

OPTIONS = SUBCOMMANDS["demo"].options


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Run the demo chosen by ``config["example"]`` (see ``OPTIONS``): ``canonflow action-angle`` on the preset's
    system, or :func:`~canonflow.density.reference_runs.run_banana`; write the model and figures to ``run``'s
    directory; return the results of the module docstring."""
    config = complete(OPTIONS, config)
    preset = load_preset("demo", config["example"]).settings(config["quick"])
    if config["example"] == "kepler":
        shared = {option.name for option in action_angle.OPTIONS} - {"system"}
        kepler = {key: value for key, value in config.items() if key in shared}
        return action_angle.run(kepler | {"system": preset["action_angle"]}, run)
    dtype = as_dtype(config["dtype"], "demo")
    data, test = banana_draws(preset["num_train"], preset["num_test"], config["seed"], dtype)
    options = run.training_options(config, {"steps": preset["steps"], "lr": config["lr"]}, description="demo")
    flow, _, results = run_banana(
        {"hidden": config["hidden"], **preset["model"]}, data, test, config["seed"], TrainConfig(**options),
        batch_size=config["batch_size"], dtype=dtype, device=run.device(config), distributed=run.distributed,
    )  # fmt: skip
    if run.writes:
        run.save_model(flow, {"command": "demo", "config": config})
        with torch.no_grad():
            drawn = flow.sample(len(test)).numpy()
        plot_scatter({"exact samples": test.numpy(), "trained flow": drawn}, run.figures() / "samples.png")
    return results


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The held-out checks of a demo ``model.pt`` (trained with the config ``trained``) on the test set of the
    seed it was trained with."""
    preset = load_preset("demo", "banana").settings()
    dtype = next(model.parameters()).dtype
    return banana_checks(model, banana_draws(preset["num_train"], preset["num_test"], trained["seed"], dtype)[1])


def report(results: dict[str, Any]) -> list[str]:
    """The lines ``canonflow demo`` prints."""
    if "system" in results:
        return action_angle.report(results)
    return [
        f"banana density: trained {results['steps']} steps in {results['train_seconds']:.1f} s",
        f"held-out NLL {results['test_nll']:.4f} nats (exact density: {results['exact_nll']:.4f})",
        f"inverse round trip max error {results['round_trip_error']:.2e}; "
        f"symplectic defect max|JᵀΩJ - Ω| {results['symplectic_defect']:.2e}",
    ]


COMMAND = command(__name__)
