"""canonflow learn-hamiltonian: learn a Hamiltonian from noisy trajectories and compare it with the truth.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.data import TrajectoryRecord, load_trajectories
from canonflow.hamiltonian_learning import hamiltonian_test_sets, plot_record_rollout, record_rollout
from canonflow.hamiltonian_learning.protocols import protocol_errors, run_protocol, run_record
from canonflow.plots import plot_hamiltonian, save_figure
from canonflow.presets import GENERIC, load_preset
from canonflow.run_directory import Run
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "load_record", "report", "run", "run_on_data"]

OPTIONS = SUBCOMMANDS["learn-hamiltonian"].options


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Run the protocol ``config["system"]`` (:func:`~canonflow.hamiltonian_learning.protocols.run_protocol`) or
    fit ``config["data"]`` (:func:`run_on_data`); write model and figures to ``run``'s directory; return the
    results of the module docstring."""
    config = complete(OPTIONS, config)
    if config["data"] is not None:
        return run_on_data(config, run)
    name, seed = config["system"], config["seed"]
    preset = load_preset("learn-hamiltonian", name).settings(config["quick"])
    preset |= {key: config[key] for key in ("mode", "lr", "polynomial", "base_steps") if config[key] is not None}
    training = {"steps": preset["steps"], "lr": preset["lr"]}
    options = run.training_options(config, training, f"{name}/{preset['mode']}", evaluations=20)
    found = run_protocol(
        preset, seed, TrainConfig(**options), adjoint=config["adjoint"] is not False, dtype=config["dtype"],
        device=config["device"],
    )  # fmt: skip
    model, system, results = found.model, found.system, {"system": name, **found.results}
    if run.writes:
        mode, adjoint = results["mode"], results["adjoint"]
        run.save_model(
            model, {"command": "learn-hamiltonian", "system": name, "mode": mode, "adjoint": adjoint, "config": config}
        )
        grid = hamiltonian_test_sets(system, grid_size=101, num=1)["grid"]
        with torch.no_grad():
            true, learned = system(grid), model(grid.to(next(model.parameters()).dtype)).to(torch.float64)
        plot_hamiltonian(grid, true, learned, found.rollout, preset["energy_scale"], system.n, run.figures())
    return results


def load_record(config: Mapping[str, Any]) -> TrajectoryRecord:
    """The record of ``config["data"]`` (``config["mass"]``: of ``p = m dq/dt``), in the config's dtype."""
    record = load_trajectories(config["data"], mass=config["mass"], record=True, derivatives="central")
    return record.to(as_dtype(config["dtype"], "learn-hamiltonian"))


def run_on_data(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Fit the trajectories of ``config["data"]`` with the generic preset
    (:func:`~canonflow.hamiltonian_learning.protocols.run_record`); write model and figures to ``run``'s
    directory; return the results."""
    preset = load_preset("learn-hamiltonian", GENERIC).settings(config["quick"])
    preset |= {key: config[key] for key in ("mode", "lr") if config[key] is not None}
    record = load_record(config)
    training = {"steps": preset["steps"], "lr": preset["lr"]}
    options = run.training_options(config, training, f"{record.name}/{preset['mode']}", evaluations=20)
    found = run_record(
        preset, record, config["seed"], TrainConfig(**options), damping=config["damping"],
        adjoint=config["adjoint"] is True, dtype=config["dtype"], device=config["device"],
    )  # fmt: skip
    results = {"data": str(config["data"]), **found.results}
    if run.writes:
        run.save_model(found.model, {"command": "learn-hamiltonian", "data": str(config["data"]), "config": config})
        save_figure(plot_record_rollout(found.rollout), run.figures() / "record_rollout.png")
    return results


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Hamiltonian and rollout errors of a ``model.pt`` written by ``canonflow learn-hamiltonian`` with the
    config ``trained`` (with ``--data``: the rollouts over the held-out trajectories of the same file)."""
    if trained.get("data") is not None:
        model = model.to(as_dtype(trained["dtype"], "learn-hamiltonian"))
        fraction = load_preset("learn-hamiltonian", GENERIC).settings(trained["quick"])["validation_fraction"]
        return {"record_rollout": record_rollout(model, load_record(trained).split(fraction)[1]).summary()}
    preset = load_preset("learn-hamiltonian", trained["system"]).settings(config["quick"])
    return protocol_errors(model, preset, trained["seed"])[0]


def report(results: dict[str, Any]) -> list[str]:
    """The lines ``canonflow learn-hamiltonian`` prints."""
    if "record_rollout" in results:  # a run on the user's --data
        found, held = results["record_rollout"], results["records"]
        where = "the training trajectories (one in the file)" if held["in_sample"] else "the held-out trajectories"
        friction = "" if results["damping"] is None else f"; friction γ {results['damping']:.4g}"
        return [
            f"{results['data']} {results['mode']}: {results['training']['steps']} steps in "
            f"{results['training']['seconds']:.0f} s{friction}",
            f"rollouts over {where} ({found['segments']} segments, {found['samples']} samples): state MSE "
            f"{found['state_mse']:.3e}, energy MSE {found['energy_mse']:.3e} (in the learned H)",
        ]
    summary = ", ".join(f"{k} {v:.4g}" for k, v in results["hamiltonian_error"].items())
    energy_mse = results["rollout"]["energy_mse"]
    lines = [
        f"{results['system']} {results['mode']}: H error {summary}; energy MSE {energy_mse:.3e}; "
        f"{results['total_seconds']:.0f} s wall, {results['total_cpu_seconds']:.0f} s CPU"
    ]
    if not math.isfinite(energy_mse):
        lines.append("warning: the learned dynamics blew up along a rollout (non-finite energy error)")
    return lines


COMMAND = command(__name__)
