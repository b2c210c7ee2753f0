"""Tests of :mod:`canonflow.data.trajectories`: generated trajectories and :class:`TrajectoryData`."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from randomness import Z_SCORE, gen, seed

from canonflow.data import TrajectoryData, trajectories
from canonflow.phase_space import hamiltonian_vector_field, join, split
from canonflow.systems import HamiltonianSystem, HarmonicOscillator, Kepler, Pendulum


def test_shapes_and_exact_solution() -> None:
    system = HarmonicOscillator(2, omega=[1.0, 2.0])
    data = trajectories(system, 5, (6.0, 31), seed=3)
    assert data.times.shape == (31,) and data.states.shape == (5, 31, 4)
    assert data.num_trajectories == 5 and data.num_times == 31 and data.n == 2
    assert data.system_name == "oscillator" and data.noise_std == 0.0
    assert torch.allclose(data.times, torch.linspace(0, 6.0, 31, dtype=torch.float64))
    assert torch.equal(data.states, data.clean_states)
    x0 = data.clean_states[:, 0]
    for i in (0, 10, 30):
        exact = system.exact_flow(x0, data.times[i].item())
        assert torch.allclose(data.clean_states[:, i], exact, atol=1e-10)


def test_initial_and_times_array() -> None:
    system = Kepler()
    x0 = system.sample_orbits(3, generator=gen(0))
    times = np.array([1.0, 1.5, 4.0])
    data = trajectories(system, 3, times, initial=x0)
    assert torch.equal(data.clean_states[:, 0], x0)  # states at times[0] are the initial conditions
    assert torch.allclose(data.times, torch.from_numpy(times))
    energy = system(data.clean_states.reshape(-1, 4)).reshape(3, 3)
    assert torch.allclose(energy, energy[:, :1].expand(3, 3), rtol=1e-10)


def test_derivatives_equal_hamiltonian_vector_field() -> None:
    system = HarmonicOscillator(1, omega=1.7)
    data = trajectories(system, 4, (3.0, 11), noise_std=0.1, seed=1)
    q, p = split(data.clean_states)
    analytic = join(p, -(1.7**2) * q)  # (∂H/∂p, −∂H/∂q)
    assert torch.allclose(data.derivatives, analytic, atol=1e-12)
    pendulum = Pendulum()
    data = trajectories(pendulum, 3, (2.0, 5))
    flat_states, flat_derivs = data.flat()
    assert torch.allclose(flat_derivs, hamiltonian_vector_field(pendulum, flat_states), atol=1e-14)
    # and they are the actual time derivatives of the trajectories (central differences)
    fine = trajectories(pendulum, 2, np.linspace(0.0, 1.0, 1001))
    fd = (fine.clean_states[:, 2:] - fine.clean_states[:, :-2]) / (2e-3)
    assert torch.allclose(fd, fine.derivatives[:, 1:-1], atol=1e-5)


@pytest.mark.statistical
def test_noise_statistics() -> None:
    data = trajectories(HarmonicOscillator(3), 40, (5.0, 50), noise_std=0.05, seed=seed(2))
    noise = data.states - data.clean_states
    assert noise.std().item() == pytest.approx(0.05, rel=Z_SCORE / math.sqrt(2 * noise.numel()))
    assert abs(noise.mean().item()) < Z_SCORE * 0.05 / math.sqrt(noise.numel())
    assert data.noise_std == 0.05


def test_seed_reproducibility() -> None:
    system = Pendulum()
    a = trajectories(system, 3, (1.0, 4), noise_std=0.01, seed=5)
    b = trajectories(system, 3, (1.0, 4), noise_std=0.01, seed=5)
    c = trajectories(system, 3, (1.0, 4), noise_std=0.01, seed=6)
    assert torch.equal(a.states, b.states) and not torch.equal(a.states, c.states)


def test_save_load_round_trip(tmp_path) -> None:
    data = trajectories(Kepler(), 2, (1.0, 5), noise_std=0.02, seed=0)
    path = tmp_path / "kepler.npz"
    data.save(path)
    assert sorted(os.listdir(tmp_path)) == ["kepler.npz"]  # no temporary files left
    loaded = TrajectoryData.load(path)
    for field in ("times", "states", "clean_states", "derivatives"):
        assert torch.equal(getattr(loaded, field), getattr(data, field))
    assert loaded.noise_std == 0.02 and loaded.system_name == "kepler"
    data.to(torch.float32).save(path)  # overwrite in place
    assert TrajectoryData.load(path).states.dtype == torch.float32
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        TrajectoryData.load(tmp_path / "other.npz")


def test_to_dtype() -> None:
    data = trajectories(Pendulum(), 2, (1.0, 3), dtype=torch.float32)
    assert data.states.dtype == torch.float32 and data.times.dtype == torch.float32
    back = data.to(torch.float64)
    assert back.derivatives.dtype == torch.float64
    with pytest.raises(TypeError, match="floating"):
        data.to(torch.int64)


def test_bad_inputs() -> None:
    system = HarmonicOscillator(1)
    with pytest.raises(ValueError, match="NaN"):
        trajectories(system, 2, (1.0, 3), initial=torch.tensor([[0.0, float("nan")], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="noise_std >= 0"):
        trajectories(system, 2, (1.0, 3), noise_std=-0.1)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        trajectories(system, 2, (1.0, 3), initial=torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="increasing"):
        trajectories(system, 2, [0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="num_points"):
        trajectories(system, 2, (1.0, 1))
    with pytest.raises(ValueError, match="num_trajectories"):
        trajectories(system, 0, (1.0, 3))
    with pytest.raises(TypeError, match="HamiltonianSystem or a callable"):
        trajectories(3.0, 2, (1.0, 3))
    with pytest.raises(ValueError, match=r"trajectories: a plain callable H\(x\).*initial"):
        trajectories(lambda x: x.sum(-1), 2, (1.0, 3))
    with pytest.raises(NotImplementedError, match=r"'mine'.*sample_initial=.*initial=x0"):
        trajectories(HamiltonianSystem.from_potential(lambda q: q.sum(-1), 1, name="mine"), 2, (1.0, 3))


def test_a_plain_callable_is_a_system() -> None:
    # H(x) = |x|²/2 given as a function: the same solution as HarmonicOscillator, named after the function
    def spring(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * x).sum(-1)

    exact = HarmonicOscillator(2)
    x0 = exact.sample_initial(3, generator=gen(4))
    data = trajectories(spring, 3, (2.0, 9), initial=x0, noise_std=0.01, seed=2)
    reference = trajectories(exact, 3, (2.0, 9), initial=x0, noise_std=0.01, seed=2)
    assert data.system_name == "spring" and data.n == 2
    for field in ("states", "clean_states", "derivatives"):
        assert torch.equal(getattr(data, field), getattr(reference, field))
    assert trajectories(lambda x: 0.5 * (x * x).sum(-1), 3, (2.0, 9), initial=x0).system_name == "custom"

    def draws(num: int, generator: torch.Generator | None) -> torch.Tensor:
        return exact.sample_initial(num, generator=generator)

    own = HamiltonianSystem.from_potential(lambda q: 0.5 * (q * q).sum(-1), 2, sample_initial=draws)
    assert torch.equal(trajectories(own, 3, (2.0, 9), seed=5).states, trajectories(exact, 3, (2.0, 9), seed=5).states)


def test_trajectory_data_validation() -> None:
    t = torch.linspace(0, 1, 4, dtype=torch.float64)
    x = torch.zeros(2, 4, 2, dtype=torch.float64)
    TrajectoryData(t, x, x, x, 0.0, "oscillator")
    with pytest.raises(ValueError, match="time samples"):
        TrajectoryData(t[:3], x, x, x, 0.0, "oscillator")
    with pytest.raises(ValueError, match="derivatives has shape"):
        TrajectoryData(t, x, x, x[:1], 0.0, "oscillator")
    with pytest.raises(ValueError, match="NaN"):
        TrajectoryData(t, x.clone().fill_(float("nan")), x, x, 0.0, "oscillator")
    with pytest.raises(ValueError, match="noise_std"):
        TrajectoryData(t, x, x, x, -1.0, "oscillator")
    with pytest.raises(ValueError, match="increasing"):
        TrajectoryData(t.flip(0), x, x, x, 0.0, "oscillator")
    with pytest.raises(ValueError, match="even"):
        y = torch.zeros(2, 4, 3, dtype=torch.float64)
        TrajectoryData(t, y, y, y, 0.0, "oscillator")
