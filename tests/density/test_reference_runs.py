"""``canonflow/density/reference_runs.py``: the free-energy, density and banana runs the command line makes."""

from __future__ import annotations

import math

import pytest
import torch

from canonflow.data import BANANA_NLL, banana, load_dataset
from canonflow.density.reference_runs import (
    banana_checks,
    banana_draws,
    free_energy_estimates,
    held_out_nll_entry,
    run_banana,
    run_density,
    run_free_energy,
)
from canonflow.estimators import exact_free_energy
from canonflow.presets import load_preset
from canonflow.systems import get_system
from canonflow.training import TrainConfig


def without_timings(entry: dict) -> dict:
    """A results entry without its wall-clock seconds."""
    return {key: value for key, value in entry.items() if "seconds" not in key}


def test_run_free_energy_fits_estimates_and_compares_the_spectrum() -> None:
    system, beta = get_system("harmonic_chain"), 1.0
    preset = load_preset("free-energy", "harmonic_chain").settings(quick=True) | {"samples": 400}
    config = TrainConfig(steps=3, lr=1e-2, progress=False)
    flow, result, entry = run_free_energy(preset, system, beta, 0, config)
    assert result.steps == entry["steps_run"] == 3 and next(flow.parameters()).device.type == "cpu"
    assert next(flow.parameters()).dtype == torch.float64 and entry["gradient"] == preset["gradient"]
    exact = exact_free_energy(system, beta)
    assert exact == system.free_energy(beta) and exact_free_energy(lambda x: x.pow(2).sum(-1), beta) is None
    assert entry["variational_error"] == entry["variational"] - exact and "exact_free_energy" not in entry
    estimates = free_energy_estimates(flow, system, beta, 400, 0)  # the run's estimates, redrawn from the seed
    assert estimates == {"exact_free_energy": exact, **{key: entry[key] for key in estimates if key in entry}}
    assert entry["exact_frequencies"] == sorted(system.normal_mode_frequencies().tolist())
    assert len(entry["frequencies"]) == system.n and entry["frequency_relative_error_max"] > 0
    again = run_free_energy(preset, system, beta, 0, config).entry
    assert without_timings(again) == without_timings(entry)
    assert run_free_energy(preset, system, beta, 1, config).entry["variational"] != entry["variational"]


def test_run_density_fits_and_reports_test_nlls() -> None:
    data = load_dataset("ring2d", 0, sizes=(200, 50, 100))
    preset = load_preset("density", "ring2d").settings(quick=True) | {"momenta": 2, "batch_size": 64}
    preset["model"] |= {"blocks": 1, "hidden": 8}
    config = TrainConfig(steps=4, eval_every=2, progress=False)
    flow, result, entry = run_density(preset, data, 0, config)
    assert entry["validation_curve"]["steps"] == [step for step, _ in result.validation] == [2, 4]
    assert entry["validation_nll"] == result.best_validation == min(entry["validation_curve"]["values"])
    assert {key: entry[key] for key in entry if key.startswith("test_")} == held_out_nll_entry(flow, data, 2, 0)
    assert "test_bits_per_dim" not in entry and entry["test_nll_importance_weighted"] <= entry["test_nll"]
    bits = run_density(preset, data, 0, config, bits_per_dim=True).entry  # ring2d: a zero log-Jacobian
    dim = data.test.shape[1]
    assert bits["test_bits_per_dim"] == pytest.approx(entry["test_nll"] / (dim * math.log(2)), rel=1e-12)
    assert without_timings(bits) == without_timings(entry) | {key: bits[key] for key in bits if "bits" in key}


def test_run_banana_fits_and_checks_the_flow_exactness() -> None:
    data, test = banana_draws(300, 200, 0)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(data, banana(300, generator)) and torch.equal(test, banana(200, generator))
    assert banana_draws(10, 5, 0, torch.float32)[1].dtype == torch.float32
    model = {"blocks": 1, "hidden": 8, "linear": "none", "base": "normal"}
    flow, result, entry = run_banana(model, data, test, 0, TrainConfig(steps=5, lr=1e-2, progress=False), batch_size=64)
    assert result.steps == entry["steps"] == 5 and entry["parameters"] == sum(p.numel() for p in flow.parameters())
    assert entry["exact_nll"] == BANANA_NLL and entry == {**entry, **banana_checks(flow, test)}
    with torch.no_grad():
        assert entry["test_nll"] == -flow.log_prob(test).mean().item()
    assert entry["round_trip_error"] < 1e-12 and entry["symplectic_defect"] < 1e-12  # exact in float64
    again = run_banana(model, data, test, 0, TrainConfig(steps=5, lr=1e-2, progress=False), batch_size=64).entry
    assert without_timings(again) == without_timings(entry)
