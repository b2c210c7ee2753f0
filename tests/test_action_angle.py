"""Action-angle flows: learning on small problems, persistence, and clear errors for malformed input."""

from __future__ import annotations

import math

import pytest
import torch

import canonflow
from canonflow.action_angle import ActionAngleFlow, evaluate, frequency_error, linear_fit, trajectory_loss, unwrap
from canonflow.data import trajectories
from canonflow.systems import HarmonicOscillator, Kepler


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


OSCILLATOR = HarmonicOscillator(2, omega=[1.0, 1.7])
TIMES = torch.linspace(0.0, 6.0, 40, dtype=torch.float64)


def _oscillator_data(seed: int, num: int) -> torch.Tensor:
    """Exact oscillator trajectories ``(num, 40, 4)`` (closed form, so the test spends no time integrating)."""
    initial = OSCILLATOR.sample_initial(num, generator=torch.Generator().manual_seed(seed))
    return torch.stack([OSCILLATOR.exact_flow(initial, t) for t in TIMES], dim=1)


def test_quick_oscillator_conserves_actions_to_1e_3() -> None:
    torch.manual_seed(0)
    model = ActionAngleFlow(2, blocks=0)
    model.fit(_oscillator_data(0, 64), TIMES, batch_size=32, steps=600, lr=3e-2, progress=False)
    test = _oscillator_data(1, 32)
    metrics = evaluate(model, test, TIMES, OSCILLATOR, OSCILLATOR.frequencies(test[:, 0]))
    assert max(metrics["action_conservation"]) <= 1e-3
    assert min(metrics["angle_r2"]) > 0.999
    assert max(metrics["frequency_error"]) < 1e-2
    assert metrics["angle_independence"] < 1e-2


def test_kepler_loss_improves_tenfold_from_initialization() -> None:
    system = Kepler(2)
    initial = system.sample_orbits(48, generator=torch.Generator().manual_seed(0))
    data = trajectories(system, 48, (8.0, 24), initial=initial)
    torch.manual_seed(0)
    model = ActionAngleFlow(2, blocks=2, hidden=16, householder=0)
    with torch.no_grad():
        before = float(trajectory_loss(model, data.states, "mean"))
    model.fit(data.states, data.times, batch_size=24, steps=600, lr=2e-2, normalization="mean", progress=False)
    with torch.no_grad():
        after = float(trajectory_loss(model, data.states, "mean"))
    assert after < before / 10


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = ActionAngleFlow(3, blocks=2, hidden=8, activation="softplus")
    for parameter in model.parameters():  # move away from the identity-like initialization
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    path = tmp_path / "model.pt"
    model.save(path)
    x = torch.randn(16, 6, dtype=torch.float64)
    for loaded in (ActionAngleFlow.load(path), canonflow.load(path)):
        assert isinstance(loaded, ActionAngleFlow) and loaded.config() == model.config()
        for a, b in zip(model.to_action_angle(x), loaded.to_action_angle(x), strict=True):
            assert torch.equal(a, b)


def test_round_trip_through_action_angle_coordinates() -> None:
    torch.manual_seed(0)
    model = ActionAngleFlow(2, blocks=2, hidden=8)
    x = torch.randn(32, 4, dtype=torch.float64)
    actions, angles = model.to_action_angle(x)
    assert actions.shape == angles.shape == (32, 2) and bool((actions >= 0).all())
    assert bool(((angles >= 0) & (angles < 2 * math.pi)).all())
    assert torch.allclose(model.from_action_angle(actions, angles), x, atol=1e-10)


def test_frequencies_of_an_exact_map() -> None:
    times = torch.linspace(0, 10, 50, dtype=torch.float64)
    angles = torch.remainder(0.3 - 1.7 * times, 2 * math.pi).reshape(1, -1, 1)
    slope, intercept, r2 = linear_fit(times, unwrap(angles, dim=1))
    assert torch.allclose(slope, torch.tensor(-1.7, dtype=torch.float64))
    assert float(r2) == pytest.approx(1.0)
    learned = torch.tensor([[-2.0, 1.0], [-4.0, 2.0]], dtype=torch.float64)
    matched = frequency_error(learned, torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64))
    assert matched["matched"] == [1, 0] and max(matched["relative_error"]) == 0
    winding = frequency_error(learned, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert winding["matched"] == [2, 1]


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
