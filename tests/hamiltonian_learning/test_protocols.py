"""Tests of :mod:`canonflow.hamiltonian_learning.protocols`: a protocol and a measured record run end to end, as
``canonflow learn-hamiltonian`` runs them (tiny budgets: what is checked is the wiring, not the fit's quality)."""

from __future__ import annotations

import math

import torch

from canonflow.hamiltonian_learning import HamiltonianNet, RecordRollout, Rollout
from canonflow.hamiltonian_learning.protocols import protocol_errors, run_protocol, run_record
from canonflow.presets import GENERIC, load_preset
from canonflow.training import TrainConfig
from hamiltonian_learning.common import irregular_record


def without_seconds(results: dict) -> dict:
    """``results`` without its timings (nested ``seconds`` keys)."""
    return {
        key: without_seconds(value) if isinstance(value, dict) else value
        for key, value in results.items()
        if "seconds" not in key
    }


def test_run_protocol_fits_and_evaluates_the_protocol_data() -> None:
    preset = load_preset("learn-hamiltonian", "double_well").settings(quick=True) | {"test_points": 200}
    preset |= {"rollout": {"t_end": 0.5, "num_points": 6}}
    preset |= {"hidden": 8, "num_train": 2, "num_validation": 2, "mode": "derivative", "base_steps": 3}
    config = TrainConfig(steps=4, lr=1e-3, eval_every=2, progress=False)
    found = run_protocol(preset, 0, config)
    results = found.results
    assert isinstance(found.model, HamiltonianNet) and next(found.model.parameters()).device.type == "cpu"
    assert isinstance(found.rollout, Rollout) and found.system.n == 1 and found.training.steps == 4
    assert results["mode"] == "derivative" and results["adjoint"] is False  # adjoint: implicit midpoint only
    assert results["derivatives"] == "finite_difference" and results["data"]["window"] is None
    assert results["data"]["dt"] == preset["t_end"] / (preset["num_points"] - 1)
    assert results["training"]["base_steps"] == 3 and results["training"]["steps"] == 4  # min(3, max_base_steps)
    assert results["model"]["polynomial"] == preset["polynomial"] and results["anchors"] == preset["anchors"]
    assert results["hamiltonian_error"] == protocol_errors(found.model, preset, 0)[0]["hamiltonian_error"]
    assert all(math.isfinite(value) for value in results["hamiltonian_error"].values())
    again = run_protocol(preset, 0, config)
    assert without_seconds(again.results) == without_seconds(results)  # one seed, one run
    assert run_protocol(preset, 1, config).results["hamiltonian_error"] != results["hamiltonian_error"]
    windowed = run_protocol(preset | {"mode": "implicit_midpoint", "window": 3}, 0, config).results
    assert windowed["adjoint"] is True and windowed["derivatives"] is None and windowed["data"]["window"] == 3


def test_run_record_holds_out_trajectories_and_learns_a_friction() -> None:
    preset = load_preset("learn-hamiltonian", GENERIC).settings(quick=True) | {"hidden": 8, "window": 2}
    config = TrainConfig(steps=3, lr=1e-3, eval_every=1, progress=False)
    record = irregular_record()
    found = run_record(preset, record, 0, config)
    results = found.results
    assert isinstance(found.rollout, RecordRollout) and found.system is None and found.training.steps == 3
    assert results["records"]["train"]["trajectories"] == 3 and results["records"]["held_out"]["trajectories"] == 1
    assert results["records"]["in_sample"] is False and results["derivatives"] == record.derivative_method
    assert results["damping"] is None and results["mode"] == preset["mode"]
    assert results["record_rollout"] == found.rollout.summary()
    damped = run_record(preset, record, 0, config, damping=True)
    assert damped.model.damping is not None and results["damping"] is None
    assert damped.results["damping"] == float(damped.model.damping.detach().reshape(-1)[0])
    single = run_record(preset, record.select(["trial0"]), 0, config).results
    assert single["records"]["in_sample"] is True
    assert torch.isfinite(torch.tensor(results["record_rollout"]["state_mse"]))
