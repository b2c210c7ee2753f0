"""The reference runs of ``canonflow action-angle`` as functions of their preset: system, trajectories, evaluation.

A preset is an ``action-angle`` preset's settings (``canonflow/presets/action-angle.toml``, read with
``canonflow.presets.load_preset("action-angle", name).settings()``): the ``system`` (registry name and arguments,
optionally ``centre_of_mass``), the initial-state law ``initial``, ``t_end`` and ``num_times``, and what the
evaluation compares with (``exact_frequencies``: the name of the system's method, ``exact_actions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.action_angle.metrics import evaluate
from canonflow.action_angle.model import ActionAngleFlow
from canonflow.data import TrajectoryData, trajectories
from canonflow.presets.builders import build_system, initial_states
from canonflow.systems import HamiltonianSystem

__all__ = ["preset_evaluation", "preset_system", "preset_trajectories"]


def preset_system(preset: Mapping[str, Any]) -> HamiltonianSystem:
    """The preset's system (in its centre-of-mass frame when the preset says ``centre_of_mass``)."""
    return build_system(preset["system"], preset.get("centre_of_mass", False))


def preset_trajectories(preset: Mapping[str, Any], system: HamiltonianSystem, num: int, seed: int) -> TrajectoryData:
    """``num`` exact trajectories of ``system`` from initial states drawn by the preset's law with seed ``seed``,
    at ``num_times`` times on ``[0, t_end]``."""
    initial = initial_states(preset["initial"], system, num, torch.Generator().manual_seed(seed))
    return trajectories(system, num, (preset["t_end"], preset["num_times"]), initial=initial)


def preset_evaluation(
    model: ActionAngleFlow, preset: Mapping[str, Any], system: HamiltonianSystem, test: TrajectoryData, seed: int
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """The held-out metrics of ``model`` on ``test`` (:func:`~canonflow.action_angle.evaluate`, against the
    system's exact frequencies and actions where the preset names them) and the exact frequencies (``None``: not
    known)."""
    method = preset.get("exact_frequencies")
    exact = None if method is None else getattr(system, method)(test.states[:, 0])
    actions = system.actions if preset["exact_actions"] else None
    return evaluate(model, test.states, test.times, system, exact, seed=seed, exact_actions=actions), exact
