"""Measured records: own times, gaps, unequal lengths, float32, fitting and evaluation (reading them, and the
derivative estimators: tests/data/test_measured.py and tests/data/test_records.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import fixed_manual_seed

from canonflow.data import load_trajectories, trajectories
from canonflow.hamiltonian_learning import (
    HamiltonianNet,
    evaluate_hamiltonian,
    fit_hamiltonian,
    plot_record_rollout,
    record_pairs,
    record_rollout,
    record_windows,
)
from canonflow.systems import HarmonicOscillator
from canonflow.training import TrainConfig
from hamiltonian_learning.common import OMEGA, irregular_record


def test_a_record_keeps_own_times_unequal_lengths_and_gaps() -> None:
    record = irregular_record()
    summary = record.summary()
    assert summary["trajectories"] == 4 and summary["samples"] == 13 + 17 + 21 + 25
    assert summary["segments"] == 8 and summary["gaps"] == 4 and summary["largest_gap"] == pytest.approx(0.2)
    assert 0.04 <= summary["min_step"] < summary["median_step"] < summary["max_step"] <= 0.06
    assert record.labels == ["trial0", "trial1", "trial2", "trial3"] and record.derivative_method == "central"
    assert [s[0].shape[0] for s in record.segments()] == [7, 6, 9, 8, 11, 10, 13, 12]
    assert record.segment_labels()[:2] == ["trial0/0", "trial0/1"]
    rows = record_windows(record, 4, "test")
    assert rows.shape == (sum(n - 4 for n in (7, 6, 9, 8, 11, 10, 13, 12)), 5, 3)
    offsets = rows[..., -1]
    assert bool((offsets[:, 0] == 0).all()) and float((offsets[:, 1:] - offsets[:, :-1]).max()) < 0.061  # no gap
    assert record_pairs(record, "test").shape == (76, 2, 2)  # every sample: segments have ≥ 2 samples
    with pytest.raises(ValueError, match="test: windows of 13 intervals need a gap-free segment of at least 14"):
        record_windows(record, 13, "test")


def test_records_and_uniform_data_in_float32() -> None:
    record = irregular_record(dtype=torch.float32)
    assert record.states[0].dtype == torch.float32 and record.times[0].dtype == torch.float64
    # float32 times arange(m)·Δt are uniform to their rounding: accepted (the 1e-6 check alone refused them)
    dt = 1.0 / 6.0
    times = torch.arange(400, dtype=torch.float32) * dt
    data = trajectories(HarmonicOscillator(1), 2, times.to(torch.float64).numpy(), dtype=torch.float32)
    data = type(data)(times, data.states, data.clean_states, data.derivatives, 0.0, "x")
    model = HamiltonianNet(1, hidden=8, depth=1, separable=True)
    result = fit_hamiltonian(model, data, "leapfrog", window=2, config=TrainConfig(steps=2, progress=False))
    assert result.steps == 2


@pytest.mark.statistical
@pytest.mark.parametrize("mode", ["derivative", "leapfrog", "implicit_midpoint"])
def test_fitting_a_record_with_irregular_times_and_gaps(mode: str) -> None:
    # windows integrated with the actual steps learn the quadratic H on irregular times as on regular ones; derivative
    # fitting is limited by the central differences' O(h²) error on the record
    record = irregular_record()
    fixed_manual_seed(0)
    model = HamiltonianNet(1, depth=0, quadratic=True, separable=mode == "leapfrog", dtype="float64")
    options = {} if mode == "derivative" else {"window": 3, "substeps": 2}
    config = TrainConfig(steps=300, lr=0.1, progress=False)
    fit_hamiltonian(model, record, mode, batch_size=None, config=config, **options)
    errors = evaluate_hamiltonian(model, HarmonicOscillator(1, omega=OMEGA), num=2000)
    assert errors["uniform"] < (1e-2 if mode == "derivative" else 2e-3), errors
    rolled = record_rollout(model, record, energy=HarmonicOscillator(1, omega=OMEGA))
    assert rolled.summary()["segments"] == 8 and rolled.summary()["samples"] == 76 - 8
    assert rolled.state_mse < 1e-4 and rolled.energy_mse < 1e-4, rolled.summary()


def test_record_rollout_of_the_true_dynamics_matches_the_record() -> None:
    system = HarmonicOscillator(1, omega=OMEGA)
    rolled = record_rollout(system, irregular_record())
    assert rolled.state_mse < 1e-9 and rolled.energy_mse < 1e-12
    torch.testing.assert_close(rolled.predicted[0][0], rolled.observed[0][0], rtol=0, atol=0)
    assert "implicit_midpoint" in rolled.integrator
    figure = plot_record_rollout({"true": rolled}, segments=[0, 3])
    assert len(figure.axes) == 4
    with pytest.raises(TypeError, match="record_rollout: expected a canonflow.data.TrajectoryRecord"):
        record_rollout(system, torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="record_rollout: unknown integrator 'euler'"):
        record_rollout(system, irregular_record(), integrator="euler")


def test_a_record_is_refused_where_it_cannot_serve() -> None:
    record = irregular_record()
    model = HamiltonianNet(1, hidden=4, depth=1)
    with pytest.raises(ValueError, match="fit_hamiltonian: a TrajectoryRecord has no exact derivatives.*'central'"):
        fit_hamiltonian(model, record, derivatives="exact")
    with pytest.raises(ValueError, match="fit_hamiltonian: a TrajectoryRecord has its own times"):
        fit_hamiltonian(model, record, dt=0.05)
    with pytest.raises(ValueError, match="fit_hamiltonian: adjoint=True needs one sampling interval"):
        fit_hamiltonian(model, record, "implicit_midpoint", adjoint=True, window=2)
    with pytest.raises(ValueError, match="fit_hamiltonian: the record has n=1 degrees of freedom, the model n=2"):
        fit_hamiltonian(HamiltonianNet(2, hidden=4, depth=1), record)
    assert math.isfinite(record.summary()["median_step"])


def test_given_derivatives_and_selected_trials() -> None:
    t = np.array([0.0, 0.1, 0.3, 0.0, 0.2])
    arrays = {
        "trajectory": np.array([7, 7, 7, 9, 9]),
        "t": t,
        "q": t,
        "p": np.ones(5),
        "xdot": np.stack([np.ones(5), np.zeros(5)], axis=1),
    }
    record = load_trajectories(arrays, record=True, max_gap=1.0)
    assert record.derivative_method == "given" and record.labels == ["7", "9"] and record.max_gap == 1.0
    torch.testing.assert_close(record_pairs(record, "test")[:, 1], torch.tensor([[1.0, 0.0]] * 5, dtype=torch.float64))
    held_out = record.select(["9"])
    assert held_out.labels == ["9"] and held_out.times[0].tolist() == [0.0, 0.2] and held_out.max_gap == 1.0
    with pytest.raises(ValueError, match="TrajectoryRecord.select: unknown or no labels \\['8'\\]"):
        record.select(["8"])
    with pytest.raises(ValueError, match=r"expected xdot of shape \(5, 2\)"):
        load_trajectories({**arrays, "xdot": np.ones((5, 3))}, record=True)


def test_split_holds_out_the_last_trajectories() -> None:
    record = irregular_record()  # four trials
    train, held_out, in_sample = record.split(0.2)  # ⌈0.8⌉ = 1 held out
    assert (train.labels, held_out.labels, in_sample) == (["trial0", "trial1", "trial2"], ["trial3"], False)
    assert torch.equal(held_out.states[0], record.states[3]) and held_out.max_gap == record.max_gap
    assert record.split(0.5)[1].labels == ["trial2", "trial3"]
    assert record.split(0.99)[0].labels == ["trial0"]  # at least one trajectory is trained on
    single = record.select(["trial1"])
    train, held_out, in_sample = single.split(0.2)
    assert train is single and held_out is single and in_sample
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match=f"TrajectoryRecord.split: expected 0 < fraction < 1, got {fraction}"):
            record.split(fraction)
