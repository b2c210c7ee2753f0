"""Tests of the system catalogue: formulas, conservation laws, exact results and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import Z_SCORE, gen
from scipy.integrate import solve_ivp, trapezoid

from canonflow.phase_space import hamiltonian_vector_field, poisson_bracket, split
from canonflow.systems import (
    FPUT,
    CalogeroMoser,
    CoupledOscillator,
    DoubleWell,
    HamiltonianSystem,
    HarmonicChain,
    HarmonicOscillator,
    HenonHeiles,
    Kepler,
    Pendulum,
    Ring2D,
    Toda,
    available_systems,
    get_system,
)

# (registry name, constructor kwargs, integration time covering a few periods)
CASES = [
    ("oscillator", {"n": 2, "omega": [1.0, 1.7]}, 20.0),
    ("pendulum", {"g": 2.0, "l": 0.5}, 10.0),
    ("double_well", {}, 20.0),
    ("coupled_oscillator", {"alpha": 0.5}, 20.0),
    ("henon_heiles", {}, 20.0),
    ("kepler", {"d": 2}, 30.0),
    ("kepler", {"d": 3, "k": 1.5}, 30.0),
    ("toda", {"N": 3, "periodic": True}, 15.0),
    ("toda", {"N": 4, "periodic": False}, 10.0),
    ("calogero_moser", {"N": 3}, 13.0),
    ("fput", {"N": 8, "alpha": 0.25, "beta": 0.5}, 15.0),
    ("fput", {"N": 6}, 15.0),
    ("harmonic_chain", {"n": 6, "kappa": 1.3}, 15.0),
    ("ring2d", {}, 10.0),
]
IDS = [f"{name}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for name, kw, _ in CASES]


def reference_solution(system: HamiltonianSystem, x0: torch.Tensor, times: np.ndarray) -> torch.Tensor:
    """DOP853 solution of ẋ = Ω∇H for every row of ``x0``, shape (B, T, 2n) (independent of canonflow.data)."""
    num, width = x0.shape

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(y).view(num, width)
        return hamiltonian_vector_field(system, x).detach().numpy().ravel()

    sol = solve_ivp(rhs, (times[0], times[-1]), x0.numpy().ravel(), "DOP853", t_eval=times, rtol=1e-12, atol=1e-12)
    assert sol.success, sol.message
    return torch.from_numpy(sol.y.reshape(num, width, -1).transpose(0, 2, 1).copy())


# ---------------------------------------------------------------------------------------------- registry


def test_registry_names() -> None:
    expected = {
        "oscillator",
        "pendulum",
        "double_well",
        "coupled_oscillator",
        "henon_heiles",
        "kepler",
        "toda",
        "calogero_moser",
        "fput",
        "harmonic_chain",
        "ring2d",
    }
    assert set(available_systems()) == expected
    for name in expected:
        system = get_system(name)
        assert isinstance(system, HamiltonianSystem)
        assert system.name == name
    assert get_system("kepler", d=3).n == 3


def test_unknown_system_lists_choices() -> None:
    with pytest.raises(ValueError, match="unknown system 'nope'.*harmonic_chain.*kepler"):
        get_system("nope")


# ---------------------------------------------------------------------------------------------- conservation


@pytest.mark.parametrize(("name", "kwargs", "t_end"), CASES, ids=IDS)
def test_conserved_by_reference_solution(name: str, kwargs: dict, t_end: float) -> None:
    system = get_system(name, **kwargs)
    x0 = system.sample_initial(3, generator=gen(1))
    traj = reference_solution(system, x0, np.linspace(0.0, t_end, 5))
    quantities = system.conserved_quantities()
    assert "energy" in quantities
    for key, quantity in quantities.items():
        start = quantity(x0)
        scale = start.abs().max().clamp_min(1e-3)
        for i in range(1, traj.shape[1]):
            change = (quantity(traj[:, i]) - start).abs().max() / scale
            assert change <= 1e-8, f"{name}: {key} changed by {change:.2e} (relative) by t={t_end * i / 4}"


@pytest.mark.parametrize(("name", "kwargs", "t_end"), CASES, ids=IDS)
def test_poisson_brackets_with_energy_vanish(name: str, kwargs: dict, t_end: float) -> None:
    system = get_system(name, **kwargs)
    x = system.sample_initial(16, generator=gen(2))
    grad_h = hamiltonian_vector_field(system, x).norm(dim=-1)
    for key, quantity in system.conserved_quantities().items():
        grad_q = hamiltonian_vector_field(quantity, x).norm(dim=-1)
        bracket = poisson_bracket(quantity, system, x)
        assert (bracket.abs() <= 1e-10 * (1.0 + grad_q * grad_h)).all(), f"{name}: {{{key}, H}} = {bracket}"
    # the check has teeth: a coordinate is not conserved
    assert poisson_bracket(lambda y: y[:, 0], system, x).abs().max() > 1e-3


def test_bracket_detects_wrong_formulas() -> None:
    kepler = Kepler()
    x = kepler.sample_initial(8, generator=gen(3))

    def wrong_lrl_x(y: torch.Tensor) -> torch.Tensor:  # sign of the radial term flipped
        q, p = split(y)
        ell = q[:, 0] * p[:, 1] - q[:, 1] * p[:, 0]
        return p[:, 1] * ell + q[:, 0] / q.norm(dim=-1)

    assert poisson_bracket(wrong_lrl_x, kepler, x).abs().max() > 1e-2
    toda = Toda(N=4)
    y = toda.sample_initial(8, generator=gen(3))
    # trace of L^k with a wrong (factor 2) off-diagonal normalization is not conserved
    lax = toda.lax_matrix(y)
    assert torch.allclose(torch.diagonal(lax @ lax, dim1=-2, dim2=-1).sum(-1), toda(y) / 2)

    def wrong_trace3(z: torch.Tensor) -> torch.Tensor:
        m = toda.lax_matrix(z)
        diag = torch.diag_embed(torch.diagonal(m, dim1=-2, dim2=-1))
        m = diag + 2 * (m - diag)
        return torch.diagonal(m @ m @ m, dim1=-2, dim2=-1).sum(-1)

    assert poisson_bracket(wrong_trace3, toda, y).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(set(available_systems()) - {"coupled_oscillator"}))
def test_hamiltonian_is_kinetic_plus_potential(name: str) -> None:
    system = get_system(name)
    assert system.separable
    x = system.sample_initial(7, generator=gen(4))
    q, p = split(x)
    assert torch.allclose(system.hamiltonian(x), system.kinetic(p) + system.potential(q), rtol=1e-14, atol=1e-14)
    assert torch.allclose(system(x), system.hamiltonian(x))


def test_non_separable_raises() -> None:
    system = CoupledOscillator(0.3)
    assert not system.separable
    with pytest.raises(NotImplementedError, match="coupled_oscillator"):
        system.kinetic(torch.zeros(2, 1, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="coupled_oscillator"):
        system.potential(torch.zeros(2, 1, dtype=torch.float64))


@pytest.mark.parametrize("name", available_systems())
def test_dtype_and_gradients(name: str) -> None:
    system = get_system(name)
    x = system.sample_initial(4, generator=gen(5), dtype=torch.float32)
    assert x.dtype == torch.float32 and x.shape == (4, 2 * system.n)
    x.requires_grad_(True)
    energy = system(x)
    assert energy.dtype == torch.float32 and energy.shape == (4,)
    energy.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for quantity in system.conserved_quantities().values():
        assert quantity(x.detach()).dtype == torch.float32


@pytest.mark.parametrize("name", available_systems())
def test_sample_initial_reproducible(name: str) -> None:
    system = get_system(name)
    a = system.sample_initial(5, generator=gen(6))
    b = system.sample_initial(5, generator=gen(6))
    c = system.sample_initial(5, generator=gen(7))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(system(a)).all()


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", available_systems())
def test_wrong_width_names_the_system(name: str) -> None:
    system = get_system(name)
    bad = torch.zeros(3, 2 * system.n + 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=type(system).__name__):
        system.hamiltonian(bad)
    with pytest.raises(ValueError, match="last dimension"):
        system(bad)
    if system.separable:
        with pytest.raises(ValueError, match=name):
            system.potential(torch.zeros(3, system.n + 1, dtype=torch.float64))


def test_bad_inputs() -> None:
    system = HarmonicOscillator(2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        system.hamiltonian(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        system(torch.full((2, 4), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        system(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="length n=2"):
        HarmonicOscillator(2, omega=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="omega"):
        HarmonicOscillator(1, omega=-1.0)
    with pytest.raises(ValueError, match="d = 2 or 3"):
        Kepler(d=4)
    with pytest.raises(ValueError, match="alpha"):
        CoupledOscillator(alpha=1.0)
    with pytest.raises(ValueError, match="N >= 3"):
        Toda(N=2)
    with pytest.raises(ValueError, match="num"):
        system.sample_initial(0)
    with pytest.raises(ValueError, match="energy_range"):
        Kepler().sample_orbits(3, energy_range=(-0.5, 0.1))
    with pytest.raises(ValueError, match="eccentricity_range"):
        Kepler().sample_orbits(3, eccentricity_range=(0.1, 1.0))


# ---------------------------------------------------------------------------------------------- exact results


def test_oscillator_exact() -> None:
    system = HarmonicOscillator(3, omega=[0.5, 1.0, 2.5])
    x0 = system.sample_initial(4, generator=gen(8))
    assert torch.allclose(system.frequencies(x0), torch.tensor([0.5, 1.0, 2.5], dtype=torch.float64).expand(4, 3))
    times = np.array([0.0, 1.3, 4.0])
    traj = reference_solution(system, x0, times)
    for i, t in enumerate(times):
        assert torch.allclose(system.exact_flow(x0, float(t)), traj[:, i], atol=1e-10)
    # each oscillator returns after its own period 2π/ω_k (and not after half of it)
    for k, w in enumerate(system.omega):
        back = reference_solution(system, x0, np.array([0.0, math.pi / w, 2 * math.pi / w]))
        idx = [k, k + 3]
        assert torch.allclose(back[:, 2, idx], x0[:, idx], atol=1e-9)
        assert not torch.allclose(back[:, 1, idx], x0[:, idx], atol=1e-3)
    assert torch.allclose(system.actions(x0), system.mode_energies(x0) / torch.tensor(system.omega).double())
    assert system.free_energy(1.0) == pytest.approx(-sum(math.log(2 * math.pi / w) for w in system.omega))


@pytest.mark.parametrize("energy_fraction", [0.2, 0.9, 1.6])
def test_pendulum_frequency(energy_fraction: float) -> None:
    system = Pendulum(g=2.0, l=0.5)
    w0 = system.omega0
    p0 = math.sqrt(2 * energy_fraction * system.separatrix_energy)  # start at q = 0 with H = fraction · 2ω₀²
    x0 = torch.tensor([[0.0, p0]], dtype=torch.float64)
    omega = float(system.frequencies(x0))
    if energy_fraction < 1:  # small-amplitude limit is approached from below
        assert omega < w0
    period = 2 * math.pi / omega
    traj = reference_solution(system, x0, np.array([0.0, 0.5 * period, period]))
    shift = 0.0 if energy_fraction < 1 else 2 * math.pi
    assert traj[0, 2, 0].item() == pytest.approx(shift, abs=1e-8)
    assert traj[0, 2, 1].item() == pytest.approx(p0, abs=1e-8)
    assert abs(traj[0, 1, 1].item() - p0) > 1e-2


def test_coupled_oscillator_exact_flow() -> None:
    system = CoupledOscillator(0.6)
    x0 = system.sample_initial(4, generator=gen(9))
    period = 2 * math.pi / float(system.frequencies())
    traj = reference_solution(system, x0, np.array([0.0, 2.1, period]))
    assert torch.allclose(system.exact_flow(x0, 2.1), traj[:, 1], atol=1e-10)
    assert torch.allclose(traj[:, 2], x0, atol=1e-9)


@pytest.mark.statistical
def test_kepler_sample_orbits() -> None:
    kepler = Kepler(k=1.3)
    x = kepler.sample_orbits(2000, energy_range=(-0.7, -0.4), eccentricity_range=(0.2, 0.6), generator=gen(10))
    energy, ecc, ell = kepler(x), kepler.eccentricity(x), kepler.angular_momentum(x)
    assert energy.min() >= -0.7 - 1e-12 and energy.max() <= -0.4 + 1e-12
    assert energy.max() - energy.min() > 0.25  # spread over the range
    assert ecc.min() >= 0.2 - 1e-10 and ecc.max() <= 0.6 + 1e-10 and ecc.max() - ecc.min() > 0.35
    assert (ell > 0).all()
    a = kepler.semi_major_axis(x)
    assert torch.allclose(ell**2, kepler.k * a * (1 - ecc**2), rtol=1e-10)
    # random phase: with a uniform mean anomaly exactly half of the time is spent moving outwards
    q, p = split(x)
    outward = ((q * p).sum(-1) > 0).double().mean().item()
    assert outward == pytest.approx(0.5, abs=0.05)
    # random orientation: the pericentre direction (LRL vector) is isotropic
    lrl = kepler.lrl_vector(x)
    angle = torch.atan2(lrl[:, 1], lrl[:, 0])
    assert abs(torch.cos(angle).mean().item()) < 0.08 and abs(torch.sin(angle).mean().item()) < 0.08


def test_kepler_frequency_matches_period() -> None:
    kepler = Kepler(k=1.3)
    x0 = kepler.sample_orbits(3, generator=gen(11))
    omega = kepler.frequencies(x0)
    assert torch.allclose(omega, (-2 * kepler(x0)) ** 1.5 / kepler.k)
    for i in range(3):
        period = 2 * math.pi / omega[i].item()
        traj = reference_solution(kepler, x0[i : i + 1], np.array([0.0, 0.5 * period, period]))
        assert torch.allclose(traj[0, 2], x0[i], atol=1e-8)
        assert not torch.allclose(traj[0, 1], x0[i], atol=1e-2)
    with pytest.raises(ValueError, match="bound"):
        kepler.frequencies(torch.tensor([[1.0, 0.0, 0.0, 3.0]], dtype=torch.float64))


def test_kepler_3d_matches_2d_in_plane() -> None:
    k2, k3 = Kepler(d=2), Kepler(d=3)
    x2 = k2.sample_orbits(5, generator=gen(12))
    x3 = k3.sample_orbits(5, generator=gen(12))
    q, p = split(x3)
    assert torch.equal(q[:, :2], split(x2)[0]) and (q[:, 2] == 0).all() and (p[:, 2] == 0).all()
    assert torch.allclose(k3.angular_momentum(x3)[:, 2], k2.angular_momentum(x2))
    assert torch.allclose(k3.lrl_vector(x3)[:, :2], k2.lrl_vector(x2))
    assert torch.allclose(k3(x3), k2(x2))


def test_harmonic_chain_free_energy_and_modes() -> None:
    chain = HarmonicChain(32)
    assert chain.free_energy(1.0) == pytest.approx(-57.0638, abs=5e-5)
    w = chain.normal_mode_frequencies()
    assert chain.free_energy(2.0) == pytest.approx(float(torch.log(2.0 * w / (2 * math.pi)).sum()) / 2.0)
    v = chain.normal_modes()
    assert torch.allclose(v.T @ v, torch.eye(32, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(v.T @ chain.stiffness_matrix() @ v, torch.diag(w**2), atol=1e-12)
    # the numerical spectrum of κL agrees
    stiff = HarmonicChain(5, kappa=2.0)
    eig = torch.linalg.eigvalsh(stiff.stiffness_matrix())
    assert torch.allclose(eig.sqrt(), stiff.normal_mode_frequencies(), atol=1e-12)
    x = stiff.sample_initial(3, generator=gen(13))
    assert torch.allclose(stiff.mode_energies(x).sum(-1), stiff(x), rtol=1e-12)


@pytest.mark.statistical
def test_harmonic_chain_boltzmann_sampler() -> None:
    chain = HarmonicChain(4, kappa=1.5)
    beta = 2.0
    x = chain.sample_boltzmann(40000, beta=beta, generator=gen(14))
    q, p = split(x)
    cov_q = q.T @ q / q.shape[0]
    exact = torch.linalg.inv(beta * chain.stiffness_matrix())

    # entries of a sample covariance of N zero-mean Gaussian draws have variance (Σ_ii Σ_jj + Σ_ij²) / N
    def se(cov: torch.Tensor) -> torch.Tensor:
        return ((torch.outer(cov.diagonal(), cov.diagonal()) + cov**2) / x.shape[0]).sqrt()

    assert ((cov_q - exact).abs() <= Z_SCORE * se(exact)).all()
    exact_p = torch.eye(4, dtype=torch.float64) / beta
    assert ((p.T @ p / p.shape[0] - exact_p).abs() <= Z_SCORE * se(exact_p)).all()
    assert chain(x).mean().item() == pytest.approx(chain.n / beta, rel=0.02)  # equipartition


@pytest.mark.statistical
def test_ring2d_free_energy_and_sampler() -> None:
    ring = Ring2D()
    assert round(ring.free_energy(1.0), 4) == -4.3715
    # consistency of Z(β) with the sampler: E_β[H] = d(βF)/dβ
    beta, h = 1.5, 1e-4
    mean_energy = ((beta + h) * ring.free_energy(beta + h) - (beta - h) * ring.free_energy(beta - h)) / (2 * h)
    x = ring.sample_boltzmann(40000, beta=beta, generator=gen(15))
    energy = ring(x)
    assert energy.mean().item() == pytest.approx(mean_energy, abs=Z_SCORE * energy.std().item() / math.sqrt(40000))
    # radial law: r has density ∝ r exp(−β(r−2)²/0.32); mean r = ∫ r² ... / ∫ r ...
    r = x[:, :2].norm(dim=-1)
    grid = np.linspace(0.0, 6.0, 200001)
    dens = grid * np.exp(-beta * (grid - 2.0) ** 2 / 0.32)
    mean_r = trapezoid(grid * dens, grid) / trapezoid(dens, grid)
    assert r.mean().item() == pytest.approx(mean_r, abs=Z_SCORE * r.std().item() / 200)
    angle = torch.atan2(x[:, 1], x[:, 0])
    assert abs(torch.cos(angle).mean().item()) < Z_SCORE * torch.cos(angle).std().item() / 200
    assert torch.allclose(ring.log_density_q(x[:, :2]), -ring.potential(x[:, :2]))


def test_calogero_moser_isochronous_and_ordered() -> None:
    system = CalogeroMoser(N=4, omega=1.3)
    x0 = system.sample_initial(3, generator=gen(16))
    q0 = split(x0)[0]
    assert (q0[:, 1:] - q0[:, :-1] >= 0.6 - 1e-12).all()
    times = np.linspace(0.0, system.period(), 9)
    traj = reference_solution(system, x0, times)
    assert torch.allclose(traj[:, -1], x0, atol=1e-7)
    assert (traj[..., 1:4] - traj[..., 0:3] > 0).all()  # order is preserved
    assert torch.allclose(system.lax_traces(x0)[:, 0], 2 * system(x0), rtol=1e-12)


@pytest.mark.parametrize(("N", "omega", "g"), [(3, 1.5, 0.7), (4, 1.0, 1.0)])
def test_calogero_moser_actions_generate_commuting_2pi_periodic_flows(N: int, omega: float, g: float) -> None:
    """The actions from the spectrum of L⁺L⁻: positive, zero at the equilibrium, ``H = E₀ + ω Σ k I_k``,
    conserved, in involution, and each generates a flow that returns after 2π but not after π."""
    system = CalogeroMoser(N, omega=omega, g=g)
    x0 = system.sample_initial(2, generator=gen(21))
    actions = system.actions(x0)
    assert actions.shape == (2, N) and (actions > 0).all()
    assert system.actions(system.equilibrium()[None]).abs().max() < 1e-12
    weights = torch.arange(1, N + 1, dtype=torch.float64)
    assert torch.allclose(system.ground_energy() + omega * actions @ weights, system(x0), rtol=1e-13)
    later = reference_solution(system, x0, np.array([0.0, 2.0]))[:, -1]
    assert torch.allclose(system.actions(later), actions, atol=1e-9)
    for k in range(N):
        action_k = lambda x, k=k: system.actions(x)[:, k]  # noqa: E731
        flow = reference_solution(action_k, x0, np.array([0.0, math.pi, 2 * math.pi]))
        assert torch.allclose(flow[:, 2], x0, atol=1e-8)
        assert (flow[:, 1] - x0).norm(dim=-1).min() > 0.1
        for j in range(k):
            bracket = poisson_bracket(lambda x, j=j: system.actions(x)[:, j], action_k, x0)
            assert bracket.abs().max() < 1e-10


def test_fput_normal_modes() -> None:
    fput = FPUT(N=7)
    h = fput.normal_modes()
    assert torch.allclose(h @ h, torch.eye(7, dtype=torch.float64), atol=1e-12)
    stiffness = 2 * torch.eye(7, dtype=torch.float64) - torch.roll(torch.eye(7), 1, 0).double()
    stiffness = stiffness - torch.roll(torch.eye(7), -1, 0).double()
    w = fput.normal_mode_frequencies()
    assert torch.allclose(h @ stiffness @ h, torch.diag(w**2), atol=1e-12)
    x = fput.sample_initial(4, generator=gen(17))
    assert torch.allclose(fput.normal_mode_energies(x).sum(-1), fput(x), rtol=1e-12)
    names = set(fput.conserved_quantities())
    assert {f"mode_energy_{k}" for k in range(7)} <= names
    assert not any(k.startswith("mode_energy") for k in FPUT(N=7, beta=1.0).conserved_quantities())


def test_fput_linear_chain_conserves_each_mode_energy_but_nonlinear_does_not() -> None:
    linear, nonlinear = FPUT(N=8), FPUT(N=8, alpha=0.0, beta=5.0)
    x0 = linear.sample_initial(2, generator=gen(18))
    times = np.array([0.0, 20.0])
    e0 = linear.normal_mode_energies(x0)
    lin = linear.normal_mode_energies(reference_solution(linear, x0, times)[:, -1])
    assert torch.allclose(lin, e0, atol=1e-10)
    nonlin = linear.normal_mode_energies(reference_solution(nonlinear, x0, times)[:, -1])
    assert (nonlin - e0).abs().max() > 1e-3


def test_henon_heiles_sampler_below_escape() -> None:
    system = HenonHeiles()
    x = system.sample_initial(500, generator=gen(19))
    energy = system(x)
    assert energy.max() < system.escape_energy and energy.max() <= 0.125 + 1e-12
    assert (split(x)[0].norm(dim=-1) <= 0.3 + 1e-12).all()


def test_double_well_potential() -> None:
    system = DoubleWell()
    q = torch.tensor([[-1.0], [0.0], [1.0], [2.0]], dtype=torch.float64)
    assert torch.allclose(system.potential(q), torch.tensor([-0.25, 0.0, -0.25, 2.0], dtype=torch.float64))
