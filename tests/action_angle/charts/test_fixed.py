"""Closed-form charts (canonflow/action_angle/charts/fixed.py): Kepler, Calogero–Moser, affine normal modes."""

from __future__ import annotations

import math

import pytest
import torch
from layer_contract import ALL_CHECKS, run_check

import canonflow
from canonflow.action_angle import ActionAngleFlow, evaluate, unwrap
from canonflow.action_angle.charts import AffineChart, CalogeroMoserChart, KeplerChart, normal_mode_chart
from canonflow.data import trajectories
from canonflow.phase_space import symplectic_form
from canonflow.systems import CalogeroMoser, CentreOfMassFrame, HarmonicChain, HarmonicOscillator, Kepler, Toda
from canonflow.testing import assert_symplectic


def test_kepler_chart_is_canonical_invertible_and_winds_both_planes() -> None:
    system = Kepler(2)
    chart = KeplerChart()
    x = system.sample_orbits(16, generator=torch.Generator().manual_seed(0))
    z, _ = chart(x)
    assert torch.allclose(chart.inverse(z)[0], x, atol=1e-12)
    assert_symplectic(chart, x[:4], atol=1e-12)
    # plane 2 is the angular momentum: I₂ = G exactly
    assert torch.allclose(0.5 * (z[:, 1] ** 2 + z[:, 3] ** 2), system.angular_momentum(x), rtol=1e-12)
    # on trajectories both chart planes turn once per orbit (winding numbers 1, 1), the identity's do not
    data = trajectories(system, 16, (14.0, 100), initial=x)
    model = ActionAngleFlow(2, chart={"name": "kepler"}, symmetry_planes=1, blocks=1, hidden=4)
    metrics = evaluate(model, data.states, data.times, exact_frequencies=system.frequencies(x))
    assert metrics["frequency_matched"] == [1, 1] and max(metrics["frequency_error"]) < 0.05
    assert metrics["action_conservation"][1] < 1e-12
    clockwise = x.clone()
    clockwise[:, 2:] *= -1
    with pytest.raises(ValueError, match="counter-clockwise"):
        chart(clockwise)


@pytest.mark.parametrize(("N", "omega", "g"), [(2, 1.0, 1.0), (3, 1.0, 1.0), (3, 1.3, 0.8), (4, 1.0, 0.5)])
def test_calogero_moser_chart_is_exact_canonical_and_invertible(N: int, omega: float, g: float) -> None:
    """Round trips both ways, symplectic both ways, actions equal the Lax-spectrum actions, H = K(I)."""
    system = CalogeroMoser(N, omega=omega, g=g)
    chart = CalogeroMoserChart(N, omega=omega, g=g)
    assert not list(chart.parameters())
    x = system.sample_initial(6, generator=torch.Generator().manual_seed(N))
    z, logabsdet = chart(x)
    assert torch.equal(logabsdet, torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(chart.inverse(z)[0], x, rtol=0, atol=1e-12)
    latent = torch.randn(5, 2 * N, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(chart(chart.inverse(latent)[0])[0], latent, rtol=0, atol=1e-12)
    assert_symplectic(chart, x[:4], atol=1e-10)
    assert_symplectic(chart, latent[:3], atol=1e-10, inverse=True)
    actions = 0.5 * (z[:, :N] ** 2 + z[:, N:] ** 2)
    torch.testing.assert_close(actions, system.actions(x), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(system.action_hamiltonian(actions), system(x), rtol=1e-13, atol=0.0)
    with torch.no_grad():
        assert torch.equal(chart(x)[0], z)
    single = CalogeroMoserChart(N, omega=omega, g=g).float()
    torch.testing.assert_close(single(x.float())[0], z.float(), rtol=0, atol=1e-4)
    swapped = x.clone()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    with pytest.raises(ValueError, match="CalogeroMoserChart.forward: expected ordered particles"):
        chart(swapped)


def test_calogero_moser_chart_is_an_exact_action_angle_map(tmp_path) -> None:
    """Along held-out trajectories the chart's actions are constant and its angles turn at exactly 1, 2, 3 ω; a
    saved model rebuilds the chart from its config."""
    system = CalogeroMoser(3, omega=1.3)
    data = trajectories(
        system,
        12,
        (2 * system.period(), 60),
        initial=system.sample_initial(12, generator=torch.Generator().manual_seed(3)),
    )
    model = ActionAngleFlow(3, chart={"name": "calogero_moser", "N": 3, "omega": 1.3}, blocks=0, householder=0)
    omega = torch.full((12,), 1.3, dtype=torch.float64)
    metrics = evaluate(model, data.states, data.times, system, omega, exact_actions=system.actions)
    assert max(metrics["action_conservation"]) < 1e-9
    assert max(metrics["action_error"]) < 1e-9
    assert metrics["frequency_matched"] == [1, 2, 3] and max(metrics["frequency_error"]) < 1e-8
    assert min(metrics["angle_r2_min"]) > 1 - 1e-12
    assert metrics["angle_independence"] < 1e-12
    model.save(tmp_path / "cm.pt")
    loaded = canonflow.load(tmp_path / "cm.pt")
    torch.testing.assert_close(loaded(data.states[:, 0]), model(data.states[:, 0]), rtol=0, atol=0)


def _random_symplectic(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(2 * n, 2 * n, generator=generator, dtype=torch.float64)
    return torch.linalg.matrix_exp(0.3 * symplectic_form(n, dtype=torch.float64) @ (a + a.T))


@pytest.mark.parametrize("n", [1, 2, 3, 8])
@pytest.mark.parametrize("check", [check for check in ALL_CHECKS if check != "gradients"])
def test_affine_chart_meets_the_layer_contract(n: int, check: str) -> None:
    centre = torch.randn(2 * n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    make = lambda: AffineChart(centre.tolist(), _random_symplectic(n, seed=n)).eval()  # noqa: E731
    assert not list(make().parameters())
    run_check(check, make, n)


def test_affine_chart_rejects_bad_matrices() -> None:
    with pytest.raises(ValueError, match="AffineChart: the matrix is not symplectic"):
        AffineChart([0.0, 0.0], [[2.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="AffineChart: expected a 4×4 matrix"):
        AffineChart([0.0] * 4, torch.eye(2))
    with pytest.raises(ValueError, match="AffineChart: expected centre of length 2n"):
        AffineChart([0.0] * 3, torch.eye(3))
    with pytest.raises(ValueError, match="AffineChart: centre and matrix must be finite"):
        AffineChart([math.nan, 0.0], torch.eye(2))


def test_normal_mode_chart_diagonalizes_a_quadratic_hamiltonian_exactly() -> None:
    chain = HarmonicChain(5, kappa=2.0)
    chart = AffineChart(**{k: v for k, v in normal_mode_chart(chain, [0.0] * 10).items() if k != "name"})
    z = torch.randn(64, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    omega = chain.normal_mode_frequencies().sort().values
    expected = 0.5 * (omega * (z[:, :5] ** 2 + z[:, 5:] ** 2)).sum(-1)
    torch.testing.assert_close(chain.hamiltonian(chart.inverse(z)[0]), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="normal_mode_chart: the centre is not an equilibrium"):
        normal_mode_chart(chain, [0.1] + [0.0] * 9)
    with pytest.raises(ValueError, match="normal_mode_chart: expected a centre of 10 numbers"):
        normal_mode_chart(chain, [0.0] * 4)
    with pytest.raises(ValueError, match="circular pairs must be two distinct mode indices"):
        normal_mode_chart(chain, [0.0] * 10, circular=[(1, 1)])


def test_circular_modes_carry_the_angular_momentum_of_an_isotropic_oscillator() -> None:
    oscillator = HarmonicOscillator(2, omega=[1.3, 1.3])
    spec = normal_mode_chart(oscillator, [0.0] * 4, circular=[(0, 1)])
    chart = AffineChart(spec["centre"], spec["matrix"])
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z, _ = chart(x)
    actions = 0.5 * (z[:, :2] ** 2 + z[:, 2:] ** 2)
    momentum = x[:, 0] * x[:, 3] - x[:, 1] * x[:, 2]
    torch.testing.assert_close(actions[:, 0] - actions[:, 1], momentum, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(actions.sum(-1) * 1.3, oscillator.hamiltonian(x), rtol=1e-12, atol=1e-12)


def test_calogero_moser_normal_mode_chart_winds_each_plane_with_its_frequency() -> None:
    """The chart at the equilibrium puts the three modes (ω, 2ω, 3ω) on the planes; in the identity's planes of
    the outer particles (q₁ ≈ −1.2, q₃ ≈ 1.2) the orbits do not surround the origin and never turn."""
    system = CalogeroMoser(3)
    spec = normal_mode_chart(system, system.equilibrium())
    initial = system.sample_initial(16, generator=torch.Generator().manual_seed(0))
    data = trajectories(system, 16, (system.period(), 240), initial=initial)
    model = ActionAngleFlow(3, chart=spec, blocks=0, householder=0)

    def turns(flow: ActionAngleFlow) -> torch.Tensor:  # (16, 3): turns of each latent plane in one period
        with torch.no_grad():
            angles = unwrap(flow.to_action_angle(data.states)[1], dim=1)
        return (angles[:, -1] - angles[:, 0]) / (2 * math.pi)

    expected = torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64).expand(16, 3)
    torch.testing.assert_close(turns(model), expected, rtol=0, atol=1e-6)
    assert evaluate(model, data.states, data.times)["action_conservation"][0] < 1e-12  # the centre-of-mass mode
    assert float(turns(ActionAngleFlow(3, blocks=0, householder=0))[:, [0, 2]].abs().max()) < 1e-6
    loaded = ActionAngleFlow.from_config(model.config())
    torch.testing.assert_close(loaded(data.states[:, 0]), model(data.states[:, 0]), rtol=0, atol=0)


def test_toda_normal_mode_chart_has_degenerate_frequencies() -> None:
    system = CentreOfMassFrame(Toda(3, periodic=True))
    spec = normal_mode_chart(system, [0.0] * 4)
    matrix = torch.tensor(spec["matrix"], dtype=torch.float64)
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = z @ torch.linalg.inv(matrix).T
    energy = lambda y: system.hamiltonian(y.unsqueeze(0)).sum()  # noqa: E731
    hessian = torch.func.hessian(energy)(torch.zeros(4, dtype=torch.float64))
    quadratic = 0.5 * torch.einsum("bi,ij,bj->b", x, hessian, x)
    torch.testing.assert_close(quadratic, 0.5 * 3**0.5 * z.pow(2).sum(-1), rtol=1e-12, atol=1e-12)
