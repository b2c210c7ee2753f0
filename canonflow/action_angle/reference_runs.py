"""The reference runs of ``canonflow action-angle`` as functions of their preset: system, trajectories, evaluation.

A preset is an ``action-angle`` preset's settings (``canonflow/presets/action-angle.toml``, read with
``canonflow.presets.load_preset("action-angle", name).settings()``): the ``system`` (registry name and arguments,
optionally ``centre_of_mass``), the initial-state law ``initial``, ``t_end`` and ``num_times``, and what the
evaluation compares with (``exact_frequencies``: the name of the system's method, ``exact_actions``), the model
(``model``, an optional ``chart``), the training (``train``: keyword arguments of ``ActionAngleFlow.fit``, absent for
an exact chart; ``terms`` of the loss), ``num_train`` and ``num_test``. :func:`run_reference` runs one end to end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from canonflow.action_angle.losses import make_loss
from canonflow.action_angle.metrics import evaluate, parameter_count
from canonflow.action_angle.model import ActionAngleFlow
from canonflow.data import TrajectoryData, trajectories
from canonflow.distributed import DistributedContext
from canonflow.presets.builders import build_chart, build_system, initial_states
from canonflow.systems import HamiltonianSystem

__all__ = [
    "TEST_SEED_OFFSET",
    "ReferenceRun",
    "preset_evaluation",
    "preset_system",
    "preset_trajectories",
    "run_reference",
]

TEST_SEED_OFFSET = 1000
"""Held-out trajectories start from initial states drawn with seed ``seed + TEST_SEED_OFFSET``."""


class ReferenceRun(NamedTuple):
    """What :func:`run_reference` did: the ``model`` (on the CPU), its JSON-ready ``metrics``, the held-out
    trajectories ``test`` and the system's exact frequencies on them (``exact``, ``None``: not known)."""

    model: ActionAngleFlow
    metrics: dict[str, Any]
    test: TrajectoryData
    exact: torch.Tensor | None


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


def run_reference(
    name: str,
    preset: Mapping[str, Any],
    system: HamiltonianSystem,
    seed: int,
    training: Mapping[str, Any] | None = None,
    *,
    dtype: str | torch.dtype = "float64",
    device: str | torch.device = "cpu",
    distributed: DistributedContext | None = None,
) -> ReferenceRun:
    """Train and evaluate an ``ActionAngleFlow`` on ``system`` per ``preset``, as ``canonflow action-angle`` does.

    The model (``preset["model"]``, with the preset's ``chart`` built for ``system``; in ``dtype``) is initialized
    from seed ``seed``; ``num_train`` training trajectories start from seed ``seed`` and ``num_test`` held-out ones
    from ``seed + TEST_SEED_OFFSET`` (:func:`preset_trajectories`). A preset with a ``train`` table is fitted on
    ``device`` with the loss ``make_loss(system, **preset["terms"])`` and ``training`` (keyword arguments of
    ``ActionAngleFlow.fit``; default: ``preset["train"]``); one without is an exact chart, evaluated untrained.
    ``metrics``: :func:`preset_evaluation`'s, then ``system`` (``name``), ``description``, ``n``, ``model`` (its
    config), ``parameters``, ``training`` (the settings), ``training_seconds``, ``training_steps``,
    ``best_validation_loss``, ``data_seconds`` (simulating the trajectories), ``num_train``, ``num_test``,
    ``anchor``.
    """
    torch.manual_seed(seed)
    chart = {"chart": build_chart(preset["chart"], system)} if "chart" in preset else {}
    model = ActionAngleFlow(system.n, dtype=dtype, **preset["model"], **chart)
    began = time.perf_counter()
    test = preset_trajectories(preset, system, preset["num_test"], seed + TEST_SEED_OFFSET)
    data_seconds = time.perf_counter() - began
    num_train = preset["num_train"]
    if "train" not in preset:
        fitted = {"training": "none: exact chart", "training_seconds": 0.0, "training_steps": 0}
    else:
        settings = dict(preset["train"] if training is None else training)
        began = time.perf_counter()
        train = preset_trajectories(preset, system, num_train, seed)
        data_seconds += time.perf_counter() - began
        terms = preset.get("terms", {})
        states, times, loss = train.states.to(device), train.times.to(device), make_loss(system, **terms)
        result = model.to(device).fit(states, times, loss=loss, distributed=distributed, **settings)
        model = model.cpu()
        recorded = {**settings, **{key: value for key, value in terms.items() if not callable(value)}}
        fitted = {
            "training": {k: v for k, v in recorded.items() if k not in ("checkpoint", "progress", "resume")},
            "training_seconds": result.seconds,
            "training_steps": result.steps,
            "best_validation_loss": result.best_validation,
        }
    metrics, exact = preset_evaluation(model, preset, system, test, seed)
    metrics |= {
        "system": name, "description": preset["description"], "n": system.n, "model": model.config(),
        "parameters": parameter_count(model), **fitted, "data_seconds": data_seconds, "num_train": num_train,
        "num_test": preset["num_test"], "anchor": preset["anchor"],
    }  # fmt: skip
    return ReferenceRun(model, metrics, test, exact)
