"""canonflow learn-hamiltonian: learn a Hamiltonian from noisy trajectories and compare it with the truth.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli.catalog import SUBCOMMANDS
from canonflow.cli.options import complete
from canonflow.cli.run import command
from canonflow.data import TrajectoryData, TrajectoryRecord, load_trajectories, trajectories
from canonflow.hamiltonian_learning import (
    HamiltonianNet,
    Rollout,
    evaluate_hamiltonian,
    fit_hamiltonian,
    hamiltonian_test_sets,
    plot_record_rollout,
    record_rollout,
    rollout_errors,
)
from canonflow.plots import plot_hamiltonian, save_figure
from canonflow.presets import GENERIC, load_preset
from canonflow.presets.builders import build_system, initial_states
from canonflow.run_directory import Run
from canonflow.training import TrainConfig
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "errors", "load_record", "report", "run", "run_on_data", "split_record"]

OPTIONS = SUBCOMMANDS["learn-hamiltonian"].options


def errors(model: torch.nn.Module, preset: Mapping[str, Any], seed: int) -> tuple[dict[str, Any], Rollout]:
    """Hamiltonian errors on the test sets and :func:`~canonflow.hamiltonian_learning.rollout_errors` along the
    15 rollouts of the protocol ``preset`` (a ``learn-hamiltonian`` preset's settings), and the rollout."""
    system = build_system(preset["system"])
    found = evaluate_hamiltonian(model, system, seed=seed, num=preset["test_points"])
    law = preset.get("rollout_initial", preset["initial"])
    initial = initial_states(law, system, 15, torch.Generator().manual_seed(seed + 2))
    t_end, num_points, scale = preset["rollout"]["t_end"], preset["rollout"]["num_points"], preset["energy_scale"]
    units = preset["energy_units"]
    summary, rolled = rollout_errors(model, system, initial, t_end, num_points, energy_scale=scale, energy_units=units)
    return {"hamiltonian_error": found, "rollout": summary}, rolled


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Fit a ``HamiltonianNet`` per the protocol ``config["system"]``; write model and figures to ``run``'s
    directory; return the results of the module docstring."""
    config = complete(OPTIONS, config)
    if config["data"] is not None:
        return run_on_data(config, run)
    name, seed = config["system"], config["seed"]
    preset = load_preset("learn-hamiltonian", name).settings(config["quick"])
    preset |= {key: config[key] for key in ("mode", "lr", "polynomial", "base_steps") if config[key] is not None}
    mode, polynomial, t_end, num_points = preset["mode"], preset["polynomial"], preset["t_end"], preset["num_points"]
    adjoint = mode == "implicit_midpoint" and config["adjoint"] is not False
    base_steps = min(preset["base_steps"], preset.get("max_base_steps", preset["base_steps"])) if polynomial else 0
    num_train, num_validation = sizes = [preset["num_train"], preset["num_validation"]]
    system = build_system(preset["system"])
    started, cpu_started = time.perf_counter(), time.process_time()
    initial = initial_states(preset["initial"], system, sum(sizes), torch.Generator().manual_seed(seed))
    noise = preset["noise_std"]
    data = trajectories(system, sum(sizes), (t_end, num_points), initial=initial, noise_std=noise, seed=seed + 1)
    parts = zip(data.states.split(sizes), data.clean_states.split(sizes), data.derivatives.split(sizes), strict=True)
    train, validation = (TrajectoryData(data.times, *part, data.noise_std, data.system_name) for part in parts)
    torch.manual_seed(seed)
    net = {key: preset[key] for key in ("hidden", "depth", "activation")}
    model = HamiltonianNet(system.n, **net, separable=mode == "leapfrog", polynomial=polynomial, dtype=config["dtype"])
    model = model.to(config["device"])
    training = {"steps": preset["steps"], "lr": preset["lr"]}
    options = run.training_options(config, training, f"{name}/{mode}", evaluations=20)
    batch_size = preset["batch_size"] or None
    result = fit_hamiltonian(
        model, train, mode, adjoint=adjoint, derivatives=preset["derivatives"], window=preset["window"],
        batch_size=batch_size, config=TrainConfig(**options), validation_data=validation, base_steps=base_steps,
    )  # fmt: skip
    train_seconds = time.perf_counter() - started
    model = model.cpu()
    found, rolled = errors(model, preset, seed)
    windowed = mode != "derivative"
    results = {
        "system": name, "system_repr": repr(system), "protocol": preset["protocol"], "mode": mode, "adjoint": adjoint,
        "derivatives": None if windowed else preset["derivatives"],
        "data": {
            "num_train": num_train, "num_validation": num_validation, "t_end": t_end, "num_points": num_points,
            "dt": t_end / (num_points - 1), "noise_std": noise, "initial": preset["initial"],
            "window": preset["window"] if windowed else None,
        },
        "model": model.config(),
        "training": {
            "steps": result.steps, "base_steps": base_steps, "lr": preset["lr"], "batch_size": batch_size,
            "final_loss": result.losses[-1] if result.losses else None, "best_validation": result.best_validation,
            "best_step": result.best_step, "seconds": train_seconds,
        },
        **found,
        "anchors": preset["anchors"],
        "total_seconds": time.perf_counter() - started,
        "total_cpu_seconds": time.process_time() - cpu_started,
    }  # fmt: skip
    if run.writes:
        extra = {"command": "learn-hamiltonian", "system": name, "mode": mode, "adjoint": adjoint, "config": config}
        run.save_model(model, extra)
        grid = hamiltonian_test_sets(system, grid_size=101, num=1)["grid"]
        with torch.no_grad():
            true, learned = system(grid), model(grid.to(next(model.parameters()).dtype)).to(torch.float64)
        plot_hamiltonian(grid, true, learned, rolled, preset["energy_scale"], system.n, run.figures())
    return results


def split_record(record: TrajectoryRecord, fraction: float) -> tuple[TrajectoryRecord, TrajectoryRecord, bool]:
    """``record``'s trajectories split into training and held-out ones: the last ``⌈fraction · num⌉`` (at least
    one) are held out, unless the record has a single trajectory, which then serves both (``in_sample``:
    ``True``)."""
    count = record.num_trajectories
    if count < 2:
        return record, record, True
    held = max(1, math.ceil(fraction * count))
    train, test = record.select(record.labels[: count - held]), record.select(record.labels[count - held :])
    return train, test, False


def load_record(config: Mapping[str, Any]) -> tuple[TrajectoryRecord, TrajectoryRecord, bool]:
    """The record of ``config["data"]`` (in the config's dtype), split by :func:`split_record` per the generic
    preset's ``validation_fraction``."""
    preset = load_preset("learn-hamiltonian", GENERIC).settings(config["quick"])
    record = load_trajectories(config["data"], mass=config["mass"], record=True, derivatives="central")
    return split_record(record.to(as_dtype(config["dtype"], "learn-hamiltonian")), preset["validation_fraction"])


def run_on_data(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Fit a ``HamiltonianNet`` (with a friction if ``config["damping"]``) to the trajectories of
    ``config["data"]`` with the generic preset; evaluate it by :func:`~canonflow.hamiltonian_learning.record_rollout`
    on the held-out trajectories; write model and figures to ``run``'s directory; return the results."""
    preset = load_preset("learn-hamiltonian", GENERIC).settings(config["quick"])
    preset |= {key: config[key] for key in ("mode", "lr") if config[key] is not None}
    mode, seed = preset["mode"], config["seed"]
    started = time.perf_counter()
    train, test, in_sample = load_record(config)
    torch.manual_seed(seed)
    net = {key: preset[key] for key in ("hidden", "depth", "activation")}
    model = HamiltonianNet(
        train.n, **net, separable=mode == "leapfrog", damping=config["damping"], dtype=config["dtype"]
    ).to(config["device"])
    training = {"steps": preset["steps"], "lr": preset["lr"]}
    options = run.training_options(config, training, f"{train.name}/{mode}", evaluations=20)
    result = fit_hamiltonian(
        model, train, mode, adjoint=mode == "implicit_midpoint" and config["adjoint"] is True, window=preset["window"],
        batch_size=preset["batch_size"] or None, config=TrainConfig(**options), validation_data=test,
    )  # fmt: skip
    train_seconds = time.perf_counter() - started
    model = model.cpu()
    rolled = record_rollout(model, test)
    results = {
        "data": str(config["data"]), "protocol": preset["protocol"], "mode": mode,
        "records": {"train": train.summary(), "held_out": test.summary(), "in_sample": in_sample},
        "derivatives": train.derivative_method, "model": model.config(),
        "damping": None if model.damping is None else float(model.damping.detach().reshape(-1)[0]),
        "training": {
            "steps": result.steps, "lr": preset["lr"], "final_loss": result.losses[-1] if result.losses else None,
            "best_validation": result.best_validation, "best_step": result.best_step, "seconds": train_seconds,
        },
        "record_rollout": rolled.summary(),
        "total_seconds": time.perf_counter() - started,
    }  # fmt: skip
    if run.writes:
        run.save_model(model, {"command": "learn-hamiltonian", "data": str(config["data"]), "config": config})
        save_figure(plot_record_rollout(rolled), run.figures() / "record_rollout.png")
    return results


def evaluate_checkpoint(model: torch.nn.Module, trained: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Hamiltonian and rollout errors of a ``model.pt`` written by ``canonflow learn-hamiltonian`` with the
    config ``trained`` (with ``--data``: the rollouts over the held-out trajectories of the same file)."""
    if trained.get("data") is not None:
        model = model.to(as_dtype(trained["dtype"], "learn-hamiltonian"))
        return {"record_rollout": record_rollout(model, load_record(trained)[1]).summary()}
    preset = load_preset("learn-hamiltonian", trained["system"]).settings(config["quick"])
    return errors(model, preset, trained["seed"])[0]


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
