"""``ActionAngleFlow`` (canonflow/action_angle/model.py and batches.py): maps, persistence (old files included),
fit on trajectories and points, the L-BFGS polish and resume, and clear errors for malformed input.

The tests that train to a threshold (marked ``statistical``) fix their data and initial weights: both are set-up,
not Monte Carlo draws (``tests/randomness.py``). On shifted draws of the orbits, the Kepler fit gained 3.4x to
100x: a threshold on one draw is not a statistical claim, and these tests are checked for independence of the
thread count instead."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from layer_contract import randomize_
from randomness import fixed_manual_seed

import canonflow
from action_angle.oscillators import OSCILLATOR, TIMES, oscillator_data
from canonflow.action_angle import (
    ActionAngleFlow,
    AngleLoss,
    HamiltonianLoss,
    NormalFormLoss,
    TrajectoryBatch,
    TrajectoryLoss,
    evaluate,
    unwrap,
)
from canonflow.action_angle.charts import normal_mode_chart
from canonflow.data import trajectories
from canonflow.systems import CalogeroMoser, HarmonicOscillator, Kepler
from canonflow.training import TrainConfig


@pytest.mark.statistical
def test_quick_oscillator_conserves_actions_to_1e_3() -> None:
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, blocks=0)
    model.fit(oscillator_data(0, 64), TIMES, batch_size=32, steps=600, lr=3e-2, progress=False)
    test = oscillator_data(1, 32)
    metrics = evaluate(model, test, TIMES, OSCILLATOR, OSCILLATOR.frequencies(test[:, 0]))
    assert max(metrics["action_conservation"]) <= 1e-3
    assert min(metrics["angle_r2"]) > 0.999
    assert max(metrics["frequency_error"]) < 1e-2
    assert metrics["angle_independence"] < 1e-2


@pytest.fixture(scope="module")
def kepler_orbits() -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The 48 Kepler orbits of the Kepler training tests (drawn with seed 0) as ``(states, times)`` at 24 and at 40
    times over ``[0, 8]``, from one integration at the union of both grids: the solver's steps do not depend on
    the sample times, so each grid's samples are those of an integration of its own, bit for bit."""
    grids = {points: np.linspace(0.0, 8.0, points) for points in (24, 40)}
    union = np.union1d(grids[24], grids[40])
    system = Kepler(2)
    data = trajectories(system, 48, union, initial=system.sample_orbits(48, generator=torch.Generator().manual_seed(0)))
    picks = {points: torch.from_numpy(np.searchsorted(union, grid)) for points, grid in grids.items()}
    return {points: (data.states[:, pick], data.times[pick]) for points, pick in picks.items()}


@pytest.mark.statistical
@pytest.mark.xdist_group("kepler_orbits")  # one worker integrates the module fixture once
def test_kepler_loss_improves_tenfold_from_initialization(kepler_orbits) -> None:
    # A test that trains to a threshold: orbits and weights are fixed set-up. The gain depends strongly on
    # which 48 orbits are drawn (86x on these, 3.4x to 100x over shifted draws), so the orbits are not shifted by
    # the seed sweep; the verdict is the same with 1 and 2 threads (86.5x both).
    states, times = kepler_orbits[24]
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, blocks=2, hidden=16, householder=0)
    loss = TrajectoryLoss("mean")
    with torch.no_grad():
        before = float(loss(model, states))
    model.fit(states, times, loss=loss, batch_size=24, steps=600, lr=2e-2, progress=False)
    with torch.no_grad():
        after = float(loss(model, states))
    assert after < before / 10


def test_save_load_round_trip(tmp_path) -> None:
    fixed_manual_seed(0)
    model = randomize_(ActionAngleFlow(3, blocks=2, hidden=8, activation="softplus"), scale=0.05)  # off the identity
    path = tmp_path / "model.pt"
    model.save(path)
    x = torch.randn(16, 6, dtype=torch.float64)
    for loaded in (ActionAngleFlow.load(path), canonflow.load(path)):
        assert isinstance(loaded, ActionAngleFlow) and loaded.config() == model.config()
        for a, b in zip(model.to_action_angle(x), loaded.to_action_angle(x), strict=True):
            assert torch.equal(a, b)


def test_round_trip_through_action_angle_coordinates() -> None:
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, blocks=2, hidden=8)
    x = torch.randn(32, 4, dtype=torch.float64)
    actions, angles = model.to_action_angle(x)
    assert actions.shape == angles.shape == (32, 2) and bool((actions >= 0).all())
    assert bool(((angles >= 0) & (angles < 2 * math.pi)).all())
    assert torch.allclose(model.from_action_angle(actions, angles), x, atol=1e-10)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(5, 4, dtype=torch.float64), "rank 3"),
        (torch.zeros(5, 10, 3, dtype=torch.float64), "odd"),
        (torch.zeros(5, 10, 6, dtype=torch.float64), "2n = 4"),
        (torch.zeros(5, 1, 4, dtype=torch.float64), "at least 2 time points"),
        (torch.full((5, 10, 4), math.nan, dtype=torch.float64), "NaN"),
        (torch.zeros(5, 10, 4, dtype=torch.int64), "floating"),
        ([[0.0]], "torch.Tensor"),
    ],
)
def test_malformed_trajectories_are_refused_by_name(bad, message) -> None:
    model = ActionAngleFlow(2, blocks=1, hidden=4)
    with pytest.raises((ValueError, TypeError), match=message) as info:
        model.fit(bad, steps=1, progress=False)
    assert "ActionAngleFlow.fit" in str(info.value)
    with pytest.raises((ValueError, TypeError), match="ActionAngleFlow.frequencies"):
        model.frequencies(bad, torch.linspace(0, 1, 10, dtype=torch.float64))


def test_other_bad_input() -> None:
    model = ActionAngleFlow(2, blocks=1, hidden=4)
    good = torch.randn(6, 10, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="ActionAngleFlow.fit: expected times of shape"):
        model.fit(good, torch.linspace(0, 1, 9, dtype=torch.float64), steps=1, progress=False)
    with pytest.raises(ValueError, match="strictly increasing"):
        model.frequencies(good, torch.zeros(10, dtype=torch.float64))
    with pytest.raises(TypeError, match="ActionAngleFlow.to_action_angle: input dtype"):
        model.to_action_angle(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="ActionAngleFlow.to_action_angle: expected shape"):
        model.to_action_angle(torch.zeros(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="non-negative"):
        model.from_action_angle(-torch.ones(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype must be"):
        ActionAngleFlow(2, dtype="float16")


def test_fit_refuses_a_loss_that_is_not_a_loss_and_points_for_a_loss_that_needs_time() -> None:
    model = ActionAngleFlow(2, blocks=1, hidden=4)
    with pytest.raises(TypeError, match="ActionAngleFlow.fit: expected loss to be a canonflow.losses.Loss"):
        model.fit(oscillator_data(0, 8), TIMES, loss=TrajectoryLoss, steps=1, progress=False)
    points = oscillator_data(0, 8)[:, 0]
    with pytest.raises(ValueError, match="ActionAngleFlow.fit: expected trajectories of rank 3"):
        model.fit(points, loss=NormalFormLoss(OSCILLATOR, OSCILLATOR.action_hamiltonian) + AngleLoss(), steps=1)
    with pytest.raises(ValueError, match="ActionAngleFlow.fit: times are for trajectories"):
        model.fit(points, TIMES, loss=HamiltonianLoss(OSCILLATOR), steps=1, progress=False)
    with pytest.raises(ValueError, match="ActionAngleFlow.fit: pass either config or TrainConfig keyword"):
        model.fit(oscillator_data(0, 8), config=TrainConfig(steps=1), steps=1)


@pytest.mark.statistical
@pytest.mark.xdist_group("kepler_orbits")  # one worker integrates the module fixture once
def test_kepler_chart_model_learns_winding_angles_and_saves(tmp_path, kepler_orbits) -> None:
    system = Kepler(2)
    states, times = kepler_orbits[40]
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, chart={"name": "kepler"}, symmetry_planes=1, blocks=1, hidden=8, householder=0)
    before = evaluate(model, states, times)["action_conservation"][0]
    model.fit(states, times, batch_size=24, steps=150, lr=1e-2, polish_steps=6, progress=False)
    test_initial = system.sample_orbits(16, generator=torch.Generator().manual_seed(1))
    test = trajectories(system, 16, (8.0, 40), initial=test_initial)
    metrics = evaluate(model, test.states, test.times, system, system.frequencies(test_initial))
    assert metrics["action_conservation"][0] < 0.75 * before
    assert metrics["action_conservation"][1] < 1e-6
    assert metrics["frequency_matched"] == [1, 1] and min(metrics["angle_r2"]) > 0.99
    path = tmp_path / "kepler.pt"
    model.save(path)
    loaded = canonflow.load(path)
    assert loaded.config()["chart"] == {"name": "kepler"}
    assert torch.equal(loaded(test.states), model(test.states))


@pytest.mark.statistical
def test_polish_lowers_the_loss_below_adam() -> None:
    fixed_manual_seed(0)
    data = oscillator_data(0, 32)
    adam, polished = ActionAngleFlow(2, blocks=1, hidden=4), ActionAngleFlow(2, blocks=1, hidden=4)
    polished.load_state_dict(adam.state_dict())
    options = {"batch_size": 16, "steps": 50, "lr": 1e-2, "progress": False}
    adam.fit(data, TIMES, **options)
    result = polished.fit(data, TIMES, polish_steps=3, **options)
    assert result.best_validation < 0.5 * adam.fit(data, TIMES, **{**options, "steps": 1}).best_validation
    with pytest.raises(ValueError, match="polish_steps"):
        polished.fit(data, TIMES, polish_steps=-1, **options)


@pytest.mark.statistical
def test_winding_model_keeps_the_chart_s_windings_through_training() -> None:
    # a training test: its trajectories and weights are fixed set-up (the 20 % gain asserted below was 14 % on one
    # shifted draw of the 24 initial states)
    system = CalogeroMoser(3)
    initial = system.sample_initial(24, generator=torch.Generator().manual_seed(0))
    data = trajectories(system, 24, (system.period(), 100), initial=initial)
    fixed_manual_seed(0)
    spec = normal_mode_chart(system, system.equilibrium())
    model = ActionAngleFlow(3, chart=spec, winding=True, blocks=1, hidden=8)
    before = evaluate(model, data.states, data.times)["action_conservation"]
    model.fit(data.states, data.times, batch_size=12, steps=300, lr=1e-2, progress=False)
    with torch.no_grad():
        angles = unwrap(model.to_action_angle(data.states)[1], dim=1)
    turns = (angles[:, -1] - angles[:, 0]) / (2 * math.pi)
    torch.testing.assert_close(
        turns, torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64).expand(24, 3), atol=1e-6, rtol=0
    )
    after = evaluate(model, data.states, data.times)["action_conservation"]
    assert sum(after[1:]) < 0.8 * sum(before[1:])  # the centre-of-mass plane 0 is exact from the start
    with pytest.raises(ValueError, match="winding=True needs"):
        ActionAngleFlow(3, winding=True, householder=2)


def test_fit_on_points_learns_from_the_hamiltonian_alone() -> None:
    """Points ``(N, 2n)`` with a loss that needs no time axis: ``fit(states, loss=HamiltonianLoss(H))``."""
    fixed_manual_seed(0)
    states = OSCILLATOR.sample_initial(64, generator=torch.Generator().manual_seed(2))
    model = ActionAngleFlow(2, blocks=0)
    loss = HamiltonianLoss(OSCILLATOR, num_angles=8)
    batch = TrajectoryBatch(states.unsqueeze(1), seed=5)
    with torch.no_grad():
        before = float(loss(model, batch))
    result = model.fit(states, loss=loss, batch_size=16, steps=60, lr=3e-2, polish_steps=2, progress=False)
    assert result.polish_steps == 2 and len(result.losses) == result.steps + 2
    with torch.no_grad():
        assert float(loss(model, batch)) < before / 10


def test_a_run_resumed_from_its_final_checkpoint_repeats_the_polish_exactly(tmp_path) -> None:
    """The checkpoint is written after Adam, before L-BFGS: resuming a finished run reruns the same polish."""
    options = {"batch_size": 16, "times_per_batch": 12, "steps": 20, "polish_steps": 2, "progress": False}
    checkpoint = str(tmp_path / "training.pt")
    fixed_manual_seed(0)
    first = ActionAngleFlow(2, blocks=1, hidden=4)
    done = first.fit(oscillator_data(0, 16), TIMES, checkpoint=checkpoint, **options)
    resumed = ActionAngleFlow(2, blocks=1, hidden=4)
    again = resumed.fit(oscillator_data(0, 16), TIMES, checkpoint=checkpoint, resume=True, **options)
    assert again.losses == done.losses and again.best_validation == done.best_validation
    for key, value in first.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_weights_saved_with_the_old_default_of_householder_reflections_load(tmp_path) -> None:
    """Files written when ``LinearSymplectic`` defaulted to ``min(n, 4)`` reflections (config without
    ``householder``) load into a flow rebuilt with that many; the committed oscillator model is one."""
    fixed_manual_seed(0)
    old = randomize_(ActionAngleFlow(3, blocks=0, householder=3), scale=0.1)
    config = {key: value for key, value in old.config().items() if key != "householder"}
    path = tmp_path / "old.pt"
    payload = {"format": "canonflow", "version": 1, "kind": "ActionAngleFlow", "config": config, "extra": {}}
    torch.save({**payload, "state_dict": old.state_dict()}, path)
    loaded = canonflow.load(path)
    x = torch.randn(8, 6, dtype=torch.float64)
    assert loaded.config()["householder"] == 3 and torch.equal(loaded(x), old(x))
    oscillator = HarmonicOscillator(3, omega=[1.0, 1.7, 2.3])
    committed = canonflow.load(Path(__file__).parents[2] / "experiments/results/oscillator/model.pt")
    test = trajectories(oscillator, 8, (4 * math.pi, 50), initial=oscillator.sample_initial(8))
    assert max(evaluate(committed, test.states, test.times)["action_conservation"]) < 1e-7
