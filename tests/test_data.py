"""Tests of the trajectory datasets (generated, and read from files), and of the point data sets."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch
from randomness import Z_SCORE, gen, seed

from canonflow.data import (
    BANANA_NLL,
    LogitPreprocessing,
    TrajectoryData,
    banana,
    load_dataset,
    load_trajectories,
    save_trajectories,
    trajectories,
)
from canonflow.phase_space import hamiltonian_vector_field, join, split
from canonflow.systems import HamiltonianSystem, HarmonicOscillator, Kepler, Pendulum, Ring2D


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


# ---------------------------------------------------------------------------------------------- from outside
def _oscillator_data(num: int = 3, points: int = 41) -> tuple[HarmonicOscillator, TrajectoryData]:
    system = HarmonicOscillator(2, omega=[1.0, 2.0])
    return system, trajectories(system, num, (2.0, points), seed=1)


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_save_and_load_round_trip(tmp_path, suffix: str) -> None:
    _, data = _oscillator_data()
    path = tmp_path / f"measured{suffix}"
    save_trajectories(data, path)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # written atomically: no temporary file left
    loaded = load_trajectories(path)
    assert torch.equal(loaded.times, data.times) and torch.equal(loaded.states, data.states)  # float64 exactly
    assert torch.equal(loaded.clean_states, loaded.states) and loaded.noise_std == 0.0
    assert loaded.system_name == "measured" and load_trajectories(path, name="x").system_name == "x"
    # second-order finite differences: |error| ≤ max|x⁽³⁾| Δt²/3 (one-sided at the ends), ω ≤ 2, |x| ≤ 3.1
    error = (loaded.derivatives - data.derivatives).abs().max().item()
    assert 1e-4 < error < 3.1 * 2.0**3 * 0.05**2 / 3
    assert load_trajectories(path, dtype=torch.float32).states.dtype == torch.float32


def test_positions_only_need_a_mass(tmp_path) -> None:
    # x(t) = (t², t) on uneven times: second-order differences are exact for quadratics, so p = m·dq/dt exactly
    t = np.array([0.0, 0.1, 0.25, 0.3, 0.7, 1.0])
    q = np.stack([t**2, t], axis=-1)[None]  # (1, T, 2)
    with pytest.raises(ValueError, match=r"load_trajectories: the given arrays has positions q but no momenta p"):
        load_trajectories({"t": t, "q": q})
    data = load_trajectories({"t": t, "q": q}, mass=[2.0, 3.0])
    assert data.system_name == "data" and data.n == 2
    torch.testing.assert_close(data.states[0, :, 2:], torch.from_numpy(np.stack([4.0 * t, np.full_like(t, 3.0)], -1)))
    torch.testing.assert_close(data.derivatives[0, :, :2], torch.from_numpy(np.stack([2.0 * t, np.ones_like(t)], -1)))
    # a file of positions only: the same estimate, within the finite-difference error of p = q̇ (|q⁽³⁾| ≤ 3.1·2³)
    _, generated = _oscillator_data()
    save_trajectories(generated, tmp_path / "q.csv", momenta=False)
    with pytest.raises(ValueError, match=r"q\.csv has positions q but no momenta p; pass mass=m"):
        load_trajectories(tmp_path / "q.csv")
    estimated = load_trajectories(tmp_path / "q.csv", mass=1.0)
    assert torch.equal(estimated.states[..., :2], generated.states[..., :2])
    assert (estimated.states[..., 2:] - generated.states[..., 2:]).abs().max() < 3.1 * 2.0**3 * 0.05**2 / 3


def test_loaded_trajectories_come_from_any_layout(tmp_path) -> None:
    _, data = _oscillator_data(num=2, points=5)
    data.save(tmp_path / "full.npz")  # TrajectoryData.save keeps everything, and load_trajectories reads it
    full = load_trajectories(tmp_path / "full.npz")
    assert torch.equal(full.derivatives, data.derivatives) and full.system_name == "oscillator"
    # a hand-written .csv: labels, comments, blank lines, rows in any order
    text = "# measured\ntrajectory,t,q1,p1\nb,0.5,2.0,0.0\na,0.5,1.0,1.0\n\na,0.0,0.0,1.0\nb,0.0,1.0,0.5\n"
    (tmp_path / "hand.csv").write_text(text)
    hand = load_trajectories(tmp_path / "hand.csv", noise_std=0.1)
    assert hand.noise_std == 0.1 and hand.times.tolist() == [0.0, 0.5]
    assert hand.states.tolist() == [[[1.0, 0.5], [2.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]]  # b (first row), then a


BAD_FILES = {
    "missing.csv": (None, FileNotFoundError, "no such file"),
    "data.txt": ("", ValueError, "suffix '.txt'"),
    "empty.csv": ("# nothing\n", ValueError, "empty"),
    "header.csv": ("traj,t,q1\n0,0,1\n", ValueError, "line 1: expected the header trajectory,t,q1"),
    "columns.csv": ("trajectory,t,q1,p1\n0,0,1\n", ValueError, "line 2: expected 4 columns"),
    "word.csv": ("trajectory,t,q1\n0,0,1\n0,0.1,one\n", ValueError, "line 3: could not convert"),
    "rows.csv": ("trajectory,t,q1\n", ValueError, "no data rows"),
    "times.csv": ("trajectory,t,q1\n0,0,1\n0,1,1\n1,0,1\n1,2,1\n", ValueError, "'1' is sampled at other times"),
    "once.csv": ("trajectory,t,q1,p1\n0,0,1,1\n", ValueError, "at least 2 samples"),
    "twice.csv": ("trajectory,t,q1,p1\n0,0,1,1\n0,0,1,1\n", ValueError, "strictly increasing"),
    "nan.csv": ("trajectory,t,q1,p1\n0,0,1,1\n0,1,nan,1\n", ValueError, "NaN"),
    "keys.npz": ({"t": np.zeros(3), "x": np.zeros((1, 3, 1))}, ValueError, r"found \['t', 'x'\] \(missing \['q'\]\)"),
    "extra.npz": (
        {"t": np.arange(3.0), "q": np.zeros((1, 3, 1)), "v": 1},
        ValueError,
        "optionally p, xdot, trajectory; found",
    ),
    "rank.npz": ({"t": np.arange(3.0), "q": np.zeros((3, 1))}, ValueError, r"q of shape \(num, T, n\)"),
    "length.npz": ({"t": np.arange(4.0), "q": np.zeros((1, 3, 1))}, ValueError, r"times of shape \(T,\) = \(3,\)"),
    "momenta.npz": (
        {"t": np.arange(3.0), "q": np.zeros((1, 3, 1)), "p": np.zeros((1, 3, 2))},
        ValueError,
        "expected p of the shape of q",
    ),
    "text.npz": ("not an archive", ValueError, "not a readable .npz archive"),
    "strings.npz": ({"t": np.array(["a", "b"]), "q": np.zeros((1, 2, 1))}, ValueError, "real numbers"),
}
"""Bad files: name -> (content: text, arrays for numpy.savez or None for no file; error; what it says)."""


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_named(tmp_path, name: str) -> None:
    content, error, message = BAD_FILES[name]
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    with pytest.raises(error, match=f"load_trajectories: {re.escape(str(path))}.*{message}"):
        load_trajectories(path)


def test_bad_loader_arguments() -> None:
    arrays = {"t": np.arange(3.0), "q": np.zeros((1, 3, 1))}
    with pytest.raises(ValueError, match="length n=1, got 2"):
        load_trajectories(arrays, mass=[1.0, 2.0])
    with pytest.raises(ValueError, match="mass > 0"):
        load_trajectories(arrays, mass=-1.0)
    with pytest.raises(ValueError, match="noise_std"):
        load_trajectories({**arrays, "p": arrays["q"]}, noise_std=-0.1)
    with pytest.raises(TypeError, match="expected a path"):
        load_trajectories(3)
    with pytest.raises(TypeError, match="q must be an array of real numbers"):
        load_trajectories({"t": arrays["t"], "q": object()})
    with pytest.raises(TypeError, match="save_trajectories: expected a TrajectoryData"):
        save_trajectories(arrays, "x.npz")
    with pytest.raises(ValueError, match="save_trajectories: .*suffix '.h5'"):
        save_trajectories(_oscillator_data(1, 3)[1], "x.h5")


# ---------------------------------------------------------------------------------------------- point data sets
def test_ring2d_dataset_sizes_seed_and_exact_nll() -> None:
    data = load_dataset("ring2d", 0, sizes=(300, 50, 400))
    assert (len(data.train), len(data.validation), len(data.test)) == (300, 50, 400)
    assert data.train.shape[1] == 2 and data.train.dtype == torch.float64 and not data.test_log_jacobian.any()
    again = load_dataset("ring2d", 0, sizes=(300, 50, 400))
    assert torch.equal(data.test, again.test) and not torch.equal(data.test, load_dataset("ring2d", 1).test[:400])
    system = Ring2D()  # the exact NLL: the normalized configurational density, by its normalizer
    q = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    grid = torch.cartesian_prod(q, q)
    mass = system.log_density_q(grid).exp().sum() * (q[1] - q[0]) ** 2
    assert math.log(mass) == pytest.approx(system.log_normalizer_q(), abs=1e-6)
    expected = float((-system.log_density_q(data.test) + system.log_normalizer_q()).mean())
    assert data.exact_test_nll == expected
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load_dataset("mnist", 0)


def test_banana_is_a_sheared_standard_normal() -> None:
    q, p = torch.randn(2, 500, generator=gen(3), dtype=torch.float64)
    assert torch.equal(banana(500, gen(3)), torch.stack([q, p + q**2 - 1.0], dim=1))
    assert BANANA_NLL == math.log(2 * math.pi) + 1.0  # E[|z|²/2] + log 2π: the shear has unit Jacobian


def test_logit_preprocessing_log_jacobian() -> None:
    pixels = torch.randint(0, 17, (5, 64), generator=gen(0)).double()
    prep = LogitPreprocessing(torch.randint(0, 17, (50, 64), generator=gen(1)).double(), seed=2)
    v = prep.dequantize(pixels, gen(3)).requires_grad_(True)
    y, log_jacobian = prep(v)
    derivative = torch.autograd.grad(y.sum(), v)[0]  # y is elementwise in v: dy_i/dv_i
    assert torch.allclose(log_jacobian, derivative.abs().log().sum(-1), atol=1e-10)
