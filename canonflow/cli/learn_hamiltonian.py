"""canonflow learn-hamiltonian: learn a Hamiltonian from noisy trajectories and compare it with the truth.

Its help, description and options: :data:`canonflow.cli.catalog.SUBCOMMANDS`; ``run`` and ``report`` here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch

from canonflow.cli.catalog import SUBCOMMANDS, command
from canonflow.cli.options import complete
from canonflow.data import TrajectoryData, TrajectoryRecord, load_trajectories
from canonflow.hamiltonian_learning import (
    HamiltonianNet,
    fit_hamiltonian,
    hamiltonian_test_sets,
    plot_record_rollout,
    record_rollout,
)
from canonflow.hamiltonian_learning.protocols import protocol_data, protocol_errors
from canonflow.plots import plot_hamiltonian, save_figure
from canonflow.presets import GENERIC, load_preset
from canonflow.run_directory import Run
from canonflow.training import TrainConfig, TrainResult
from canonflow.validation import as_dtype

__all__ = ["COMMAND", "OPTIONS", "load_record", "report", "run", "run_on_data", "split_record", "training_summary"]

OPTIONS = SUBCOMMANDS["learn-hamiltonian"].options
Trajectories = TrajectoryData | TrajectoryRecord


def run(config: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """Fit a ``HamiltonianNet`` per the protocol ``config["system"]``; write model and figures to ``run``'s
    directory; return the results of the module docstring."""
    config = complete(OPTIONS, config)
    if config["data"] is not None:
        return run_on_data(config, run)
    name, seed = config["system"], config["seed"]
    preset = load_preset("learn-hamiltonian", name).settings(config["quick"])
    preset |= {key: config[key] for key in ("mode", "lr", "polynomial", "base_steps") if config[key] is not None}
    mode, polynomial, windowed = preset["mode"], preset["polynomial"], preset["mode"] != "derivative"
    adjoint = mode == "implicit_midpoint" and config["adjoint"] is not False
    base_steps = min(preset["base_steps"], preset.get("max_base_steps", preset["base_steps"])) if polynomial else 0
    started, cpu_started = time.perf_counter(), time.process_time()
    system, train, validation = protocol_data(preset, seed)
    batch_size = preset["batch_size"] or None
    model, result = fit(
        config, run, preset, system.n, train, validation, name, model_options={"polynomial": polynomial},
        adjoint=adjoint, derivatives=preset["derivatives"], base_steps=base_steps,
    )  # fmt: skip
    train_seconds = time.perf_counter() - started
    found, rolled = protocol_errors(model, preset, seed)
    data = {key: preset[key] for key in ("num_train", "num_validation", "t_end", "num_points")}
    data |= {"dt": preset["t_end"] / (preset["num_points"] - 1), "noise_std": preset["noise_std"]}
    results = {
        "system": name, "system_repr": repr(system), "protocol": preset["protocol"], "mode": mode, "adjoint": adjoint,
        "derivatives": None if windowed else preset["derivatives"],
        "data": data | {"initial": preset["initial"], "window": preset["window"] if windowed else None},
        "model": model.config(),
        "training": training_summary(result, preset["lr"], train_seconds, base_steps=base_steps, batch_size=batch_size),
        **found, "anchors": preset["anchors"], "total_seconds": time.perf_counter() - started,
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


def fit(
    config: Mapping[str, Any],
    run: Run,
    preset: Mapping[str, Any],
    n: int,
    train: Any,
    validation: Any,
    name: str,
    *,
    model_options: Mapping[str, Any],
    **fit_options: Any,
) -> tuple[HamiltonianNet, TrainResult]:
    """A ``HamiltonianNet`` on ``n`` degrees of freedom (``preset``'s network, ``model_options``) initialized from
    seed ``config["seed"]`` and fitted by :func:`~canonflow.hamiltonian_learning.fit_hamiltonian` to ``train``
    (validated on ``validation``) in ``preset``'s mode, window, batch size, steps and learning rate; the model (on
    the CPU) and the training result."""
    torch.manual_seed(config["seed"])
    mode, net = preset["mode"], {key: preset[key] for key in ("hidden", "depth", "activation")}
    model = HamiltonianNet(n, **net, separable=mode == "leapfrog", dtype=config["dtype"], **model_options)
    training = {"steps": preset["steps"], "lr": preset["lr"]}
    options = run.training_options(config, training, f"{name}/{mode}", evaluations=20)
    result = fit_hamiltonian(
        model.to(config["device"]), train, mode, window=preset["window"], batch_size=preset["batch_size"] or None,
        config=TrainConfig(**options), validation_data=validation, **fit_options,
    )  # fmt: skip
    return model.cpu(), result


def training_summary(result: TrainResult, lr: float, seconds: float, **settings: Any) -> dict[str, Any]:
    """The ``training`` entry of the results: steps, ``settings``, learning rate, final loss, best validation and
    its step, seconds."""
    return {
        "steps": result.steps, **settings, "lr": lr, "final_loss": result.losses[-1] if result.losses else None,
        "best_validation": result.best_validation, "best_step": result.best_step, "seconds": seconds,
    }  # fmt: skip


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
    mode = preset["mode"]
    started = time.perf_counter()
    train, test, in_sample = load_record(config)
    model, result = fit(
        config, run, preset, train.n, train, test, train.name, model_options={"damping": config["damping"]},
        adjoint=mode == "implicit_midpoint" and config["adjoint"] is True,
    )  # fmt: skip
    train_seconds = time.perf_counter() - started
    rolled = record_rollout(model, test)
    results = {
        "data": str(config["data"]), "protocol": preset["protocol"], "mode": mode,
        "records": {"train": train.summary(), "held_out": test.summary(), "in_sample": in_sample},
        "derivatives": train.derivative_method, "model": model.config(),
        "damping": None if model.damping is None else float(model.damping.detach().reshape(-1)[0]),
        "training": training_summary(result, preset["lr"], train_seconds),
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
