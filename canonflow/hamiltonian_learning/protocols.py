"""The literature protocols of Hamiltonian learning: their simulated data and their evaluation.

A protocol is a ``learn-hamiltonian`` preset's settings (``canonflow/presets/learn-hamiltonian.toml``, read with
``canonflow.presets.load_preset("learn-hamiltonian", name).settings()``): a ``system``, initial-state law, trajectory
length, noise and sizes, the network and its training (``mode``, ``window``, ``steps``, ``lr``, ...), and how it is
evaluated (test sets, 15 rollouts, energy scale). :func:`run_protocol` runs one end to end as ``canonflow
learn-hamiltonian --system NAME`` does, :func:`run_record` fits a measured record with a preset (the generic one for
``--data FILE``); :func:`protocol_data` and :func:`protocol_errors` are their parts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from canonflow.data import TrajectoryData, TrajectoryRecord, trajectories
from canonflow.hamiltonian_learning.evaluation import RecordRollout, record_rollout
from canonflow.hamiltonian_learning.fit import fit_hamiltonian
from canonflow.hamiltonian_learning.metrics import Rollout, evaluate_hamiltonian, rollout_errors
from canonflow.hamiltonian_learning.model import HamiltonianNet
from canonflow.presets.builders import build_system, initial_states
from canonflow.systems import HamiltonianSystem
from canonflow.training import TrainConfig, TrainResult

__all__ = ["ROLLOUTS", "ProtocolRun", "protocol_data", "protocol_errors", "run_protocol", "run_record"]

ROLLOUTS = 15
"""Rollouts of a protocol's evaluation (Greydanus et al.)."""


def protocol_data(preset: Mapping[str, Any], seed: int) -> tuple[HamiltonianSystem, TrajectoryData, TrajectoryData]:
    """The protocol's system and its noisy training and validation trajectories (``num_train`` and
    ``num_validation`` of them, ``num_points`` times on ``[0, t_end]``, noise ``noise_std``): initial states drawn
    with seed ``seed``, noise with ``seed + 1``."""
    system = build_system(preset["system"])
    sizes = [preset["num_train"], preset["num_validation"]]
    initial = initial_states(preset["initial"], system, sum(sizes), torch.Generator().manual_seed(seed))
    grid, noise = (preset["t_end"], preset["num_points"]), preset["noise_std"]
    data = trajectories(system, sum(sizes), grid, initial=initial, noise_std=noise, seed=seed + 1)
    parts = zip(data.states.split(sizes), data.clean_states.split(sizes), data.derivatives.split(sizes), strict=True)
    train, validation = (TrajectoryData(data.times, *part, data.noise_std, data.system_name) for part in parts)
    return system, train, validation


def protocol_errors(model: torch.nn.Module, preset: Mapping[str, Any], seed: int) -> tuple[dict[str, Any], Rollout]:
    """The protocol's evaluation of ``model``: the Hamiltonian errors on its test sets
    (:func:`~canonflow.hamiltonian_learning.evaluate_hamiltonian`, ``test_points`` each, seed ``seed``) and
    :func:`~canonflow.hamiltonian_learning.rollout_errors` along :data:`ROLLOUTS` rollouts from initial states drawn
    with seed ``seed + 2`` (law ``rollout_initial``, default ``initial``), as ``{"hamiltonian_error": ...,
    "rollout": ...}``, and the rollout itself."""
    system = build_system(preset["system"])
    found = evaluate_hamiltonian(model, system, seed=seed, num=preset["test_points"])
    law = preset.get("rollout_initial", preset["initial"])
    initial = initial_states(law, system, ROLLOUTS, torch.Generator().manual_seed(seed + 2))
    t_end, num_points = preset["rollout"]["t_end"], preset["rollout"]["num_points"]
    summary, rolled = rollout_errors(
        model, system, initial, t_end, num_points, energy_scale=preset["energy_scale"],
        energy_units=preset["energy_units"],
    )  # fmt: skip
    return {"hamiltonian_error": found, "rollout": summary}, rolled


@dataclass
class ProtocolRun:
    """What :func:`run_protocol` or :func:`run_record` did: the fitted ``model`` (on the CPU), its ``training``, the
    JSON-ready ``results``, the evaluation's ``rollout`` (along the true dynamics of ``system``, or over a record's
    held-out trajectories when ``system`` is ``None``)."""

    model: HamiltonianNet
    training: TrainResult
    results: dict[str, Any]
    rollout: Rollout | RecordRollout
    system: HamiltonianSystem | None = None


def run_protocol(
    preset: Mapping[str, Any],
    seed: int,
    config: TrainConfig,
    *,
    adjoint: bool = True,
    dtype: str | torch.dtype = "float64",
    device: str | torch.device = "cpu",
) -> ProtocolRun:
    """Run the protocol ``preset`` as ``canonflow learn-hamiltonian --system NAME`` does: simulate its data
    (:func:`protocol_data`, seed ``seed``), fit a :class:`~canonflow.hamiltonian_learning.HamiltonianNet` to them
    (initialized from seed ``seed``, on ``device`` in ``dtype``, trained with ``config``: steps, learning rate,
    checkpoints) and evaluate it (:func:`protocol_errors`).

    ``adjoint``: adjoint gradients when the preset's ``mode`` is ``"implicit_midpoint"``. A polynomial part
    (``polynomial > 0``) is fitted alone first for ``min(base_steps, max_base_steps)`` steps. ``results`` holds
    ``system_repr``, ``protocol``, ``mode``, ``adjoint``, ``derivatives``, ``data`` (sizes, ``dt``, noise,
    initial law, window), ``model`` (its config), ``training``, ``hamiltonian_error``, ``rollout``, ``anchors``
    and the wall and CPU seconds (``total_seconds``, ``total_cpu_seconds``, data simulation included).
    """
    mode, polynomial, windowed = preset["mode"], preset["polynomial"], preset["mode"] != "derivative"
    adjoint = mode == "implicit_midpoint" and adjoint
    base_steps = min(preset["base_steps"], preset.get("max_base_steps", preset["base_steps"])) if polynomial else 0
    started, cpu_started = time.perf_counter(), time.process_time()
    system, train, validation = protocol_data(preset, seed)
    model, result = _fit(
        preset, system.n, train, validation, seed, dtype, device, config, {"polynomial": polynomial},
        adjoint=adjoint, derivatives=preset["derivatives"], base_steps=base_steps,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    found, rolled = protocol_errors(model, preset, seed)
    data = {key: preset[key] for key in ("num_train", "num_validation", "t_end", "num_points")}
    data |= {"dt": preset["t_end"] / (preset["num_points"] - 1), "noise_std": preset["noise_std"]}
    batch_size = preset["batch_size"] or None
    results = {
        "system_repr": repr(system), "protocol": preset["protocol"], "mode": mode, "adjoint": adjoint,
        "derivatives": None if windowed else preset["derivatives"],
        "data": data | {"initial": preset["initial"], "window": preset["window"] if windowed else None},
        "model": model.config(),
        "training": _training_entry(result, preset["lr"], seconds, base_steps=base_steps, batch_size=batch_size),
        **found, "anchors": preset["anchors"], "total_seconds": time.perf_counter() - started,
        "total_cpu_seconds": time.process_time() - cpu_started,
    }  # fmt: skip
    return ProtocolRun(model, result, results, rolled, system)


def run_record(
    preset: Mapping[str, Any],
    record: TrajectoryRecord,
    seed: int,
    config: TrainConfig,
    *,
    damping: bool = False,
    adjoint: bool = False,
    dtype: str | torch.dtype = "float64",
    device: str | torch.device = "cpu",
) -> ProtocolRun:
    """Fit a :class:`~canonflow.hamiltonian_learning.HamiltonianNet` (with a linear friction ``γ`` if
    ``damping``) to a measured ``record`` as ``canonflow learn-hamiltonian --data FILE`` does, with ``preset``'s
    network, ``mode``, ``window``, batch size and ``lr`` and ``config``'s steps (initialized from seed ``seed``).

    The record is split by :meth:`~canonflow.data.TrajectoryRecord.split` (``preset["validation_fraction"]``
    held out); the model is validated and evaluated by :func:`~canonflow.hamiltonian_learning.record_rollout` on
    the held-out trajectories. ``adjoint``: adjoint gradients in the ``"implicit_midpoint"`` mode. ``results``
    holds ``protocol``, ``mode``, ``records`` (``train`` and ``held_out`` summaries, ``in_sample``),
    ``derivatives``, ``model``, ``damping`` (the learned ``γ`` or ``None``), ``training``, ``record_rollout`` and
    ``total_seconds``.
    """
    started = time.perf_counter()
    mode = preset["mode"]
    train, test, in_sample = record.split(preset["validation_fraction"])
    model, result = _fit(
        preset, train.n, train, test, seed, dtype, device, config, {"damping": damping},
        adjoint=mode == "implicit_midpoint" and adjoint,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    rolled = record_rollout(model, test)
    results = {
        "protocol": preset["protocol"], "mode": mode,
        "records": {"train": train.summary(), "held_out": test.summary(), "in_sample": in_sample},
        "derivatives": train.derivative_method, "model": model.config(),
        "damping": None if model.damping is None else float(model.damping.detach().reshape(-1)[0]),
        "training": _training_entry(result, preset["lr"], seconds), "record_rollout": rolled.summary(),
        "total_seconds": time.perf_counter() - started,
    }  # fmt: skip
    return ProtocolRun(model, result, results, rolled)


def _fit(
    preset: Mapping[str, Any],
    n: int,
    train: TrajectoryData | TrajectoryRecord,
    validation: TrajectoryData | TrajectoryRecord,
    seed: int,
    dtype: str | torch.dtype,
    device: str | torch.device,
    config: TrainConfig,
    model_options: Mapping[str, Any],
    **fit_options: Any,
) -> tuple[HamiltonianNet, TrainResult]:
    """A ``HamiltonianNet`` on ``n`` degrees of freedom (``preset``'s network, ``model_options``; separable in the
    leapfrog mode) initialized from seed ``seed``, fitted by ``fit_hamiltonian`` to ``train`` (validated on
    ``validation``) in ``preset``'s mode, window and batch size with ``config``; the model (on the CPU) and the
    training result."""
    torch.manual_seed(seed)
    mode, net = preset["mode"], {key: preset[key] for key in ("hidden", "depth", "activation")}
    model = HamiltonianNet(n, **net, separable=mode == "leapfrog", dtype=dtype, **model_options)
    result = fit_hamiltonian(
        model.to(device), train, mode, window=preset["window"], batch_size=preset["batch_size"] or None,
        config=config, validation_data=validation, **fit_options,
    )  # fmt: skip
    return model.cpu(), result


def _training_entry(result: TrainResult, lr: float, seconds: float, **settings: Any) -> dict[str, Any]:
    """The ``training`` entry of the results: steps, ``settings``, learning rate, final loss, best validation and
    its step, seconds."""
    return {
        "steps": result.steps, **settings, "lr": lr, "final_loss": result.losses[-1] if result.losses else None,
        "best_validation": result.best_validation, "best_step": result.best_step, "seconds": seconds,
    }  # fmt: skip
