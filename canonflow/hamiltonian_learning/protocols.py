"""The literature protocols of Hamiltonian learning: their simulated data and their evaluation.

A protocol is a ``learn-hamiltonian`` preset's settings (``canonflow/presets/learn-hamiltonian.toml``, read with
``canonflow.presets.load_preset("learn-hamiltonian", name).settings()``): a ``system``, initial-state law, trajectory
length, noise and sizes, and how it is evaluated (test sets, 15 rollouts, energy scale). ``canonflow
learn-hamiltonian`` runs them; these functions let a script do the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.data import TrajectoryData, trajectories
from canonflow.hamiltonian_learning.metrics import Rollout, evaluate_hamiltonian, rollout_errors
from canonflow.presets.builders import build_system, initial_states
from canonflow.systems import HamiltonianSystem

__all__ = ["ROLLOUTS", "protocol_data", "protocol_errors"]

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
