"""canonflow action-angle: learn action-angle coordinates of a benchmark system and evaluate them.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.action_angle.reference_runs import (
    TEST_SEED_OFFSET,
    preset_evaluation,
    preset_system,
    preset_trajectories,
    run_reference,
)
from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.objects import import_object
from canonflow.plots import plot_action_angle
from canonflow.presets import load_preset
from canonflow.run_directory import Run
from canonflow.systems import HamiltonianSystem

__all__ = ["COMMAND", "OPTIONS", "report", "run", "setup"]

OPTIONS = SUBCOMMANDS["action-angle"].options


def setup(name: str, quick: bool = False) -> tuple[dict[str, Any], HamiltonianSystem]:
    """The settings (``quick``: with the preset's quick changes) and the system of ``name``: a preset of the
    catalogue, or the user's own system ``MODULE:NAME`` with the generic preset."""
    preset = load_preset("action-angle", name).settings(quick)
    if ":" in name:
        return preset, import_object(name, HamiltonianSystem, "action-angle: system")
    return preset, preset_system(preset)


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Train and evaluate the preset ``config["system"]``
    (:func:`~canonflow.action_angle.reference_runs.run_reference`); write model and figures to ``run``'s directory;
    return the results of the module docstring. ``quick`` applies the preset's ``quick`` settings; ``steps`` and
    ``time_limit`` override the preset's."""
    config = complete(OPTIONS, config)
    name, seed = config["system"], config["seed"]
    preset, system = setup(name, config["quick"])
    training = run.training_options(config, preset["train"], description=name) if "train" in preset else None
    model, metrics, test, exact = run_reference(
        name, preset, system, seed, training, dtype=config["dtype"], device=run.device(config),
        distributed=run.distributed,
    )  # fmt: skip
    if run.writes:
        run.save_model(model, {"command": "action-angle", "system": name, "config": config})
        matched = metrics.get("frequency_matched")
        plot_action_angle(model, test.states, test.times, exact, matched, run.figures(), title=preset["description"])
    return metrics


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The held-out metrics of an action-angle ``model.pt`` (trained with the config ``trained``) on fresh
    held-out trajectories of its system (``config["quick"]``: 16 of them instead of the preset's number)."""
    preset, system = setup(trained["system"])
    num = 16 if config["quick"] else preset["num_test"]
    test = preset_trajectories(preset, system, num, trained["seed"] + TEST_SEED_OFFSET)
    return preset_evaluation(model, preset, system, test, trained["seed"])[0]


def report(metrics: dict[str, Any]) -> list[str]:
    """The lines ``canonflow action-angle`` prints: training, then the held-out metrics per latent dof."""

    def numbers(values: list[float], pattern: str = "{:.2e}") -> str:
        return ", ".join(pattern.format(v) for v in values)

    lines = [
        f"{metrics['system']}: {metrics['training_steps']} steps in {metrics['training_seconds']:.0f} s, "
        f"{metrics['parameters']} parameters",
        "held-out metrics per latent degree of freedom:",
        "  action conservation  median std_t(I)/mean_t(I): " + numbers(metrics["action_conservation"]),
        "  angle linearity      median R² of φ(t):         " + numbers(metrics["angle_r2"], "{:.6f}"),
    ]
    if "frequency_error" in metrics:
        lines.append("  frequency error      |dφ/dt| vs m·ω:            " + numbers(metrics["frequency_error"]))
        lines.append(f"  winding numbers m:   {metrics['frequency_matched']}")
    lines.append(f"  angle independence   median std_φ(H)/|H|:      {metrics['angle_independence']:.2e}")
    if "action_error" in metrics:
        lines.append("  action error         median |I − I_exact|/I_exact: " + numbers(metrics["action_error"]))
    return lines


COMMAND = command(__name__)
