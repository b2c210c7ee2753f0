"""Tests of :mod:`canonflow.action_angle.reference_runs`: a reference run end to end as ``canonflow action-angle``
runs it (tiny budgets: what is checked is the wiring, seeds and bookkeeping, not the fit's quality)."""

from __future__ import annotations

import torch

from canonflow.action_angle import ActionAngleFlow
from canonflow.action_angle.reference_runs import (
    TEST_SEED_OFFSET,
    preset_evaluation,
    preset_system,
    preset_trajectories,
    run_reference,
)
from canonflow.presets import load_preset


def without_seconds(metrics: dict) -> dict:
    """``metrics`` without its timings."""
    return {key: value for key, value in metrics.items() if "seconds" not in key}


def test_run_reference_trains_on_one_seed_and_evaluates_on_another() -> None:
    preset = load_preset("action-angle", "oscillator").settings(quick=True) | {"num_train": 8, "num_test": 4}
    preset |= {"num_times": 20}
    system = preset_system(preset)
    training = preset["train"] | {"steps": 3, "batch_size": 4, "times_per_batch": 8, "progress": False}
    model, metrics, test, exact = run_reference("oscillator", preset, system, 0, training)
    assert isinstance(model, ActionAngleFlow) and next(model.parameters()).device.type == "cpu"
    assert torch.equal(test.states, preset_trajectories(preset, system, 4, TEST_SEED_OFFSET).states)
    assert metrics["training_steps"] == 3 and metrics["training"] == {
        k: v for k, v in training.items() if k != "progress"
    }
    assert (metrics["system"], metrics["n"], metrics["num_train"], metrics["num_test"]) == ("oscillator", 3, 8, 4)
    assert metrics["parameters"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    evaluated, exact_again = preset_evaluation(model, preset, system, test, 0)
    assert torch.equal(exact, exact_again) and all(metrics[key] == value for key, value in evaluated.items())
    again = run_reference("oscillator", preset, system, 0, training).metrics
    assert without_seconds(again) == without_seconds(metrics)
    assert run_reference("oscillator", preset, system, 1, training).metrics["angle_r2"] != metrics["angle_r2"]


def test_run_reference_evaluates_an_exact_chart_untrained() -> None:
    preset = load_preset("action-angle", "calogero_moser").settings(quick=True) | {"num_test": 2, "num_times": 10}
    system = preset_system(preset)
    model, metrics, _, _ = run_reference("calogero_moser", preset, system, 0, {"steps": 5})  # nothing to train
    assert metrics["training"] == "none: exact chart" and metrics["training_steps"] == 0
    assert "best_validation_loss" not in metrics and metrics["anchor"] == preset["anchor"]
    assert max(metrics["action_error"]) < 1e-6  # the exact chart's actions
