"""Action-angle flows: learning on small problems, persistence, and clear errors for malformed input.

The tests that train to a threshold (marked ``statistical``) fix their data and initial weights: both are set-up,
not Monte Carlo draws (``tests/randomness.py``). On shifted draws of the orbits, the Kepler and Calogero–Moser fits
gained 3.4x to 100x and 14 % to over 20 %: a threshold on one draw is not a statistical claim, and these tests are
checked for independence of the thread count instead."""

from __future__ import annotations

import math

import pytest
import torch
from layer_contract import ALL_CHECKS, randomize_, run_check
from randomness import fixed_manual_seed

import canonflow
from canonflow.action_angle import (
    ActionAngleFlow,
    action_loss,
    combined_loss,
    evaluate,
    frequency_error,
    hamiltonian_loss,
    linear_fit,
    normal_form_loss,
    trajectory_loss,
    unwrap,
)
from canonflow.action_angle.charts import (
    ActionTwist,
    AffineChart,
    BirkhoffChart,
    CalogeroMoserChart,
    KeplerChart,
    ScaledAnchoredField,
    ScaledTwistField,
    _taylor_part,
    action_shear_flow,
    birkhoff_chart,
    normal_mode_chart,
    winding_flow,
)
from canonflow.action_angle.families import toda_loop_orbits
from canonflow.data import trajectories
from canonflow.phase_space import symplectic_form
from canonflow.systems import CalogeroMoser, CentreOfMassFrame, HarmonicChain, HarmonicOscillator, Kepler, Toda
from canonflow.testing import assert_symplectic

OSCILLATOR = HarmonicOscillator(2, omega=[1.0, 1.7])
TIMES = torch.linspace(0.0, 6.0, 40, dtype=torch.float64)


def _oscillator_data(seed: int, num: int) -> torch.Tensor:
    """Exact oscillator trajectories ``(num, 40, 4)`` (closed form, so the test spends no time integrating)."""
    initial = OSCILLATOR.sample_initial(num, generator=torch.Generator().manual_seed(seed))
    return torch.stack([OSCILLATOR.exact_flow(initial, t) for t in TIMES], dim=1)


def _oscillator_charts() -> tuple[ActionAngleFlow, ActionAngleFlow, ActionAngleFlow]:
    """The oscillator's exact chart, the identity and a randomly sheared chart (float64, 2 dof)."""
    exact = ActionAngleFlow(2, chart=normal_mode_chart(OSCILLATOR, [0.0] * 4), blocks=0, householder=0)
    identity = ActionAngleFlow(2, blocks=0, householder=0)
    sheared = ActionAngleFlow(2, chart=normal_mode_chart(OSCILLATOR, [0.0] * 4), blocks=1, hidden=4, householder=0)
    return exact, identity, randomize_(sheared, 0.2)


def _fit_oscillator(**terms: object) -> ActionAngleFlow:
    """A linear read-out fitted to 64 oscillator trajectories with the given extra loss terms (300 Adam steps and
    3 L-BFGS steps); the run must end with a finite validation loss."""
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, blocks=0)
    result = model.fit(
        _oscillator_data(0, 64), TIMES, batch_size=32, polish_steps=3, steps=300, lr=3e-2, progress=False, **terms
    )
    assert math.isfinite(result.best_validation)
    return model


@pytest.mark.statistical
def test_quick_oscillator_conserves_actions_to_1e_3() -> None:
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, blocks=0)
    model.fit(_oscillator_data(0, 64), TIMES, batch_size=32, steps=600, lr=3e-2, progress=False)
    test = _oscillator_data(1, 32)
    metrics = evaluate(model, test, TIMES, OSCILLATOR, OSCILLATOR.frequencies(test[:, 0]))
    assert max(metrics["action_conservation"]) <= 1e-3
    assert min(metrics["angle_r2"]) > 0.999
    assert max(metrics["frequency_error"]) < 1e-2
    assert metrics["angle_independence"] < 1e-2


@pytest.mark.statistical
def test_kepler_loss_improves_tenfold_from_initialization() -> None:
    # A test that trains to a threshold: orbits and weights are fixed set-up. The gain depends strongly on
    # which 48 orbits are drawn (86x on these, 3.4x to 100x over shifted draws), so the orbits are not shifted by
    # the seed sweep; the verdict is the same with 1 and 2 threads (86.5x both).
    system = Kepler(2)
    initial = system.sample_orbits(48, generator=torch.Generator().manual_seed(0))
    data = trajectories(system, 48, (8.0, 24), initial=initial)
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, blocks=2, hidden=16, householder=0)
    with torch.no_grad():
        before = float(trajectory_loss(model, data.states, "mean"))
    model.fit(data.states, data.times, batch_size=24, steps=600, lr=2e-2, normalization="mean", progress=False)
    with torch.no_grad():
        after = float(trajectory_loss(model, data.states, "mean"))
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


def test_action_shear_is_canonical_conserves_actions_and_fixes_the_origin() -> None:
    fixed_manual_seed(0)
    flow = randomize_(action_shear_flow(3, 1, blocks=2, hidden=8).double(), scale=0.3)  # away from the identity
    x = torch.randn(32, 6, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x, atol=1e-3)
    assert torch.allclose(flow.inverse(z)[0], x, atol=1e-12)
    assert_symplectic(flow, x[:4], atol=1e-12)
    q, p = z[:, :3], z[:, 3:]
    assert torch.allclose(q[:, 1:] ** 2 + p[:, 1:] ** 2, x[:, 1:3] ** 2 + x[:, 4:] ** 2, atol=1e-12)
    at_origin = x.clone()
    at_origin[:, [0, 3]] = 0.0
    with torch.no_grad():
        assert float(flow(at_origin)[0][:, [0, 3]].abs().max()) == 0.0


@pytest.mark.parametrize("scaled", [False, True])
def test_twisted_action_shear_flow_is_canonical_conserves_g_and_keeps_windings(scaled: bool) -> None:
    fixed_manual_seed(0)
    flow = randomize_(action_shear_flow(2, 1, blocks=2, hidden=8, scaled=scaled, twist=6).double(), scale=0.5)
    assert any(isinstance(layer, ActionTwist) for layer in flow._transforms)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=generator, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x, atol=1e-2)
    assert torch.allclose(flow.inverse(z)[0], x, atol=1e-12)
    assert_symplectic(flow, x[:4], atol=1e-10)
    assert_symplectic(flow, x[:4], atol=1e-10, inverse=True)
    # the symmetry plane's action is conserved to rounding, the free plane's origin is fixed
    torch.testing.assert_close(z[:, 1] ** 2 + z[:, 3] ** 2, x[:, 1] ** 2 + x[:, 3] ** 2, rtol=1e-13, atol=0)
    at_origin = x.clone()
    at_origin[:, [0, 2]] = 0.0
    with torch.no_grad():
        assert float(flow(at_origin)[0][:, [0, 2]].abs().max()) == 0.0
    # loops around the origin of plane 1 (at fixed point of plane 2) keep winding once
    t = torch.linspace(0, 2 * math.pi, 400, dtype=torch.float64).unsqueeze(-1)
    loops = torch.cat([0.7 * torch.cos(t), 0.9 + 0 * t, 0.5 * torch.sin(t), 0.4 + 0 * t], -1)
    with torch.no_grad():
        q, p = flow(loops)[0].chunk(2, -1)
    angles = unwrap(torch.atan2(p, q), dim=0)
    torch.testing.assert_close((angles[-1, 0] - angles[0, 0]) / (2 * math.pi), torch.tensor(1.0).double())


@pytest.mark.parametrize("field", [ScaledAnchoredField(6), ScaledTwistField(6)])
def test_scaled_fields_are_gradients_and_the_shear_field_is_anchored(field) -> None:
    field = randomize_(field.double(), scale=0.5)
    x = torch.rand(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.3
    jacobian = torch.func.vmap(torch.func.jacrev(lambda y: field(y.unsqueeze(0))[0]))(x)
    torch.testing.assert_close(jacobian, jacobian.transpose(1, 2), rtol=0, atol=1e-12)
    if isinstance(field, ScaledAnchoredField):
        x[:, 0] = 0.0
        assert float(field(x).detach()[:, 0].abs().max()) == 0.0
    with pytest.raises(ValueError, match="scaled=True needs n = 2"):
        action_shear_flow(3, 1, blocks=1, scaled=True)


@pytest.mark.statistical
def test_kepler_chart_model_learns_winding_angles_and_saves(tmp_path) -> None:
    system = Kepler(2)
    initial = system.sample_orbits(48, generator=torch.Generator().manual_seed(0))
    data = trajectories(system, 48, (8.0, 40), initial=initial)
    fixed_manual_seed(0)
    model = ActionAngleFlow(2, chart={"name": "kepler"}, symmetry_planes=1, blocks=1, hidden=8, householder=0)
    before = evaluate(model, data.states, data.times)["action_conservation"][0]
    model.fit(data.states, data.times, batch_size=24, steps=150, lr=1e-2, polish_steps=6, progress=False)
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
    data = _oscillator_data(0, 32)
    adam, polished = ActionAngleFlow(2, blocks=1, hidden=4), ActionAngleFlow(2, blocks=1, hidden=4)
    polished.load_state_dict(adam.state_dict())
    options = {"batch_size": 16, "steps": 50, "lr": 1e-2, "progress": False}
    adam.fit(data, TIMES, **options)
    result = polished.fit(data, TIMES, polish_steps=3, **options)
    assert result.best_validation < 0.5 * adam.fit(data, TIMES, **{**options, "steps": 1}).best_validation
    with pytest.raises(ValueError, match="polish_steps"):
        polished.fit(data, TIMES, polish_steps=-1, **options)


def _combined(model: ActionAngleFlow, data: torch.Tensor, weight: float = 1.0) -> float:
    angles = 2 * math.pi * torch.rand(len(data), 16, 2, generator=torch.Generator().manual_seed(3), dtype=data.dtype)
    with torch.no_grad():
        return float(combined_loss(model, data, "spread", None, 1.0, OSCILLATOR, weight, angles))


def test_combined_loss_vanishes_on_the_exact_action_angle_map() -> None:
    """The oscillator's normal-mode chart is its exact action-angle map: the circle, angle and Hamiltonian terms
    all vanish; the identity (ellipses, since ω ≠ 1) is penalized by each of them."""
    data = _oscillator_data(0, 16)
    exact = ActionAngleFlow(2, chart=normal_mode_chart(OSCILLATOR, [0.0] * 4), blocks=0, householder=0)
    assert _combined(exact, data) < 1e-20
    identity = ActionAngleFlow(2, blocks=0, householder=0)
    angles = 2 * math.pi * torch.rand(16, 16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        actions = 0.5 * identity.radii(data).mean(dim=1)
        assert float(hamiltonian_loss(identity, OSCILLATOR, actions, angles)) > 1e-2
    assert _combined(identity, data) > 1e-2
    with pytest.raises(ValueError, match="combined_loss: hamiltonian_weight > 0 needs"):
        combined_loss(exact, data, hamiltonian_weight=1.0)


@pytest.mark.statistical
def test_fit_with_the_hamiltonian_term_lowers_the_combined_loss() -> None:
    fixed_manual_seed(0)
    data = _oscillator_data(0, 64)
    model = ActionAngleFlow(2, blocks=0)
    before = _combined(model, data)
    result = model.fit(
        data,
        TIMES,
        batch_size=32,
        hamiltonian=OSCILLATOR,
        hamiltonian_weight=1.0,
        num_angles=8,
        polish_steps=2,
        steps=200,
        lr=3e-2,
        progress=False,
    )
    assert math.isfinite(result.best_validation)
    assert _combined(model, data) < before / 100


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"hamiltonian_weight": 1.0}, TypeError, "hamiltonian_weight > 0 needs a callable hamiltonian"),
        ({"hamiltonian": OSCILLATOR}, ValueError, "only with hamiltonian_weight > 0"),
        ({"hamiltonian": OSCILLATOR, "hamiltonian_weight": -1.0}, ValueError, "hamiltonian_weight must be"),
        ({"hamiltonian": OSCILLATOR, "hamiltonian_weight": math.inf}, ValueError, "hamiltonian_weight must be"),
        ({"hamiltonian": OSCILLATOR, "hamiltonian_weight": True}, ValueError, "hamiltonian_weight must be"),
        ({"hamiltonian": "H", "hamiltonian_weight": 1.0}, TypeError, "callable hamiltonian"),
        ({"hamiltonian": OSCILLATOR, "hamiltonian_weight": 1.0, "num_angles": 1}, ValueError, "num_angles"),
        ({"hamiltonian": OSCILLATOR, "hamiltonian_weight": 1.0, "num_angles": 0}, ValueError, "num_angles"),
        ({"angle_weight": math.nan}, ValueError, "angle_weight must be"),
        ({"normal_form_weight": 1.0, "hamiltonian": OSCILLATOR}, TypeError, "needs callables hamiltonian"),
        ({"normal_form_weight": 1.0, "action_hamiltonian": sum}, TypeError, "needs callables hamiltonian"),
        ({"action_hamiltonian": sum}, ValueError, "only with normal_form_weight > 0"),
        ({"normal_form_weight": -1.0}, ValueError, "normal_form_weight must be"),
        ({"action_weight": 1.0}, TypeError, "action_weight > 0 needs a callable actions"),
        ({"action_weight": 1.0, "actions": "I"}, TypeError, "action_weight > 0 needs a callable actions"),
        ({"actions": OSCILLATOR.actions}, ValueError, "actions are used only with action_weight > 0"),
        ({"actions": OSCILLATOR.actions, "action_weight": -1.0}, ValueError, "action_weight must be"),
    ],
)
def test_fit_refuses_bad_hamiltonian_term_arguments(options, error, message) -> None:
    model = ActionAngleFlow(2, blocks=1, hidden=4)
    with pytest.raises(error, match=message) as info:
        model.fit(_oscillator_data(0, 8), TIMES, steps=1, progress=False, **options)
    assert "ActionAngleFlow.fit" in str(info.value)


def test_normal_form_loss_vanishes_exactly_on_the_action_angle_map() -> None:
    """On the oscillator's exact chart ``H = Σ ω_k I_k`` at every point; the identity (ellipses), the chart with
    its planes swapped (wrong frequencies) and a sheared chart are all penalized."""
    points = _oscillator_data(0, 16).reshape(-1, 4)
    exact, identity, sheared = _oscillator_charts()
    with torch.no_grad():
        assert float(normal_form_loss(exact, points, OSCILLATOR, OSCILLATOR.action_hamiltonian)) < 1e-28
        swapped = HarmonicOscillator(2, omega=[1.7, 1.0]).action_hamiltonian
        for wrong in (swapped, lambda actions: 1.1 * OSCILLATOR.action_hamiltonian(actions)):
            assert float(normal_form_loss(exact, points, OSCILLATOR, wrong)) > 1e-3
        assert float(normal_form_loss(identity, points, OSCILLATOR, OSCILLATOR.action_hamiltonian)) > 1e-2
        assert float(normal_form_loss(sheared, points, OSCILLATOR, OSCILLATOR.action_hamiltonian)) > 1e-4


@pytest.mark.statistical
@pytest.mark.parametrize(("omega", "matched"), [([1.0, 1.7], [0, 1])])
def test_fit_with_the_normal_form_term_learns_the_oscillator(omega: list[float], matched: list[int]) -> None:
    """``K`` fixes which latent plane carries which oscillator. Only the order the identity start already has is
    asserted: with ``omega = [1.7, 1.0]`` the fit swapped the planes on the original data seed but stayed in the
    unswapped basin (action conservation 3e-3 to 2e-2) on three of three shifted seeds (``tests/seed_sweep.py``),
    so reordering from the identity is not something this loss reliably does."""
    model = _fit_oscillator(
        hamiltonian=OSCILLATOR,
        action_hamiltonian=HarmonicOscillator(2, omega=omega).action_hamiltonian,
        normal_form_weight=1.0,
    )
    test = _oscillator_data(1, 16)
    metrics = evaluate(model, test, TIMES, OSCILLATOR, OSCILLATOR.frequencies(test[:, 0]))
    assert max(metrics["action_conservation"]) < 1e-4
    assert max(metrics["frequency_error"]) < 1e-3
    assert metrics["frequency_matched"] == matched


def test_action_loss_vanishes_exactly_on_the_action_angle_map() -> None:
    """On the oscillator's exact chart the learned actions are ``E_k/ω_k`` at every point; the identity, the
    chart with its planes swapped and a sheared chart are all penalized."""
    points = _oscillator_data(0, 16).reshape(-1, 4)
    exact, identity, sheared = _oscillator_charts()
    with torch.no_grad():
        assert float(action_loss(exact, points, OSCILLATOR.actions)) < 1e-28
        assert float(action_loss(exact, points, lambda x: OSCILLATOR.actions(x).flip(-1))) > 1e-2
        assert float(action_loss(identity, points, OSCILLATOR.actions)) > 1e-2
        assert float(action_loss(sheared, points, OSCILLATOR.actions)) > 1e-4


def test_combined_loss_takes_the_hamiltonian_and_action_terms_together() -> None:
    """Each term adds its own loss: on the exact chart every term vanishes, on the identity each is positive."""
    data = _oscillator_data(0, 8)
    angles = 2 * math.pi * torch.rand(8, 4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    terms = {"hamiltonian": OSCILLATOR, "hamiltonian_weight": 1.0, "angles": angles, "actions": OSCILLATOR.actions}
    exact, identity, _ = _oscillator_charts()
    with torch.no_grad():
        assert float(combined_loss(exact, data, action_weight=1.0, **terms)) < 1e-20
        without = float(combined_loss(identity, data, action_weight=0.0, **terms))
        alone = float(action_loss(identity, data.reshape(-1, 4), OSCILLATOR.actions))
        together = float(combined_loss(identity, data, action_weight=1.0, **terms))
    assert alone > 1e-2
    assert together == pytest.approx(without + alone, rel=1e-12)


@pytest.mark.statistical
def test_fit_with_known_actions_learns_the_oscillator_chart() -> None:
    """With the exact actions as targets the learned actions match them, not only their conservation."""
    model = _fit_oscillator(actions=OSCILLATOR.actions, action_weight=1.0)
    test = _oscillator_data(1, 16)
    metrics = evaluate(model, test, TIMES, OSCILLATOR, OSCILLATOR.frequencies(test[:, 0]))
    assert max(metrics["action_conservation"]) < 1e-4
    with torch.no_grad():
        learned = 0.5 * model.radii(test[:, 0])
    torch.testing.assert_close(learned, OSCILLATOR.actions(test[:, 0]), rtol=1e-4, atol=0.0)


def test_calogero_moser_action_hamiltonian_is_linear_with_the_ground_energy() -> None:
    system = CalogeroMoser(3, omega=1.5, g=0.7)
    ground = float(system.hamiltonian(system.equilibrium()[None]))
    assert system.ground_energy() == pytest.approx(ground, rel=1e-14)
    actions = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(
        system.action_hamiltonian(actions), torch.tensor([ground, ground + 1.5 * (1.0 + 1.0 + 0.75)]).double()
    )
    message = r"CalogeroMoser \('calogero_moser'\)\.action_hamiltonian: expected actions of shape \(B, n\) = \(B, 3\)"
    with pytest.raises(ValueError, match=message):
        system.action_hamiltonian(torch.zeros(2, 2))
    message = r"HarmonicOscillator \('oscillator'\)\.action_hamiltonian: expected actions of shape \(B, n\) = \(B, 2\)"
    with pytest.raises(ValueError, match=message):
        OSCILLATOR.action_hamiltonian(torch.zeros(3))


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


def test_winding_flow_is_canonical_and_keeps_every_plane_s_winding_numbers() -> None:
    fixed_manual_seed(0)
    flow = randomize_(winding_flow(3, blocks=2, hidden=8).double(), scale=0.5)  # away from the identity
    x = torch.randn(32, 6, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x, atol=1e-2)
    assert torch.allclose(flow.inverse(z)[0], x, atol=1e-12)
    assert_symplectic(flow, x[:4], atol=1e-12)
    # circles of radii (1, 0.5, 2) turning 1, 2, 3 times: their images turn as often in the same planes
    t = torch.linspace(0, 2 * math.pi, 400, dtype=torch.float64).unsqueeze(-1)
    radius, turns = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64), torch.tensor([1.0, 2.0, 3.0])
    loops = torch.cat([radius * torch.cos(turns * t), radius * torch.sin(turns * t)], -1)
    with torch.no_grad():
        q, p = flow(loops)[0].chunk(2, -1)
    angles = unwrap(torch.atan2(p, q), dim=0)
    torch.testing.assert_close((angles[-1] - angles[0]) / (2 * math.pi), turns.double(), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="winding_flow: needs n >= 2"):
        winding_flow(1, blocks=1)


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


@pytest.fixture(scope="module")
def toda_birkhoff_spec() -> dict:
    return birkhoff_chart(CentreOfMassFrame(Toda(3, periodic=True)), [0.0] * 4, circular=[(0, 1)], order=4)


@pytest.mark.xdist_group("toda_birkhoff_spec")  # one worker builds the module fixture once
def test_birkhoff_chart_is_exact_canonical_and_normalizes_toda_to_degree_4(toda_birkhoff_spec) -> None:
    system = CentreOfMassFrame(Toda(3, periodic=True))
    chart = BirkhoffChart(**{key: value for key, value in toda_birkhoff_spec.items() if key != "name"})
    x = 0.5 * torch.randn(32, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z, _ = chart(x)
    torch.testing.assert_close(chart.inverse(z)[0], x, rtol=0, atol=1e-12)
    torch.testing.assert_close(chart(chart.inverse(x)[0])[0], x, rtol=0, atol=1e-12)
    assert_symplectic(chart, x, atol=1e-10)
    assert_symplectic(chart, x, atol=1e-10, inverse=True)
    energy = lambda y: system.hamiltonian(chart.inverse(y)[0])  # noqa: E731
    y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    quadratic = _taylor_part(energy, y, 2)
    torch.testing.assert_close(quadratic, 0.5 * 3**0.5 * y.pow(2).sum(-1), rtol=1e-10, atol=1e-12)
    assert float(_taylor_part(energy, y, 3).abs().max()) < 1e-10 * float(quadratic.abs().max())
    # degree 4: only resonant terms stay, i.e. the part is invariant under the flow of H₂ (a common rotation)
    q, p = y.chunk(2, -1)
    turned = torch.cat([q * math.cos(1.0) + p * math.sin(1.0), p * math.cos(1.0) - q * math.sin(1.0)], -1)
    quartic = _taylor_part(energy, y, 4)
    torch.testing.assert_close(_taylor_part(energy, turned, 4), quartic, rtol=1e-9, atol=1e-12)
    model = ActionAngleFlow(2, chart=toda_birkhoff_spec, blocks=0, householder=0)
    loaded = ActionAngleFlow.from_config(model.config())
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_birkhoff_chart_normalizes_the_resonant_calogero_moser_equilibrium() -> None:
    """Frequencies 1, 2, 3 (integer multiples): the degree-3 chart leaves no cubic term at all, the resonant
    ones (``z₁² z̄₂``, ``z₁ z₂ z̄₃``) included, as an isochronous system with ``K = E₀ + Σ k I_k`` must."""
    system = CalogeroMoser(3)
    spec = birkhoff_chart(system, system.equilibrium(), order=3)
    chart = BirkhoffChart(**{key: value for key, value in spec.items() if key != "name"})
    x = system.sample_initial(16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(chart.inverse(chart(x)[0])[0], x, rtol=0, atol=1e-12)
    assert_symplectic(chart, x, atol=1e-10)
    energy = lambda y: system.hamiltonian(chart.inverse(y)[0])  # noqa: E731
    y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    quadratic = _taylor_part(energy, y, 2)
    frequencies = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(quadratic, 0.5 * (frequencies * y * y).sum(-1), rtol=1e-9, atol=1e-12)
    assert float(_taylor_part(energy, y, 3).abs().max()) < 1e-9 * float(quadratic.abs().max())


def test_birkhoff_chart_refuses_unequal_frequencies_and_bad_generators() -> None:
    with pytest.raises(ValueError, match="not integer multiples of the lowest"):
        birkhoff_chart(HarmonicOscillator(2, omega=[1.0, 1.5]), [0.0] * 4)
    with pytest.raises(ValueError, match="order >= 2"):
        birkhoff_chart(HarmonicOscillator(2, omega=1.0), [0.0] * 4, order=1)
    eye = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="exactly 'power'"):
        BirkhoffChart([0.0] * 4, eye, [{"power": 3, "directions": [[1.0, 0, 0, 0]]}])
    with pytest.raises(ValueError, match="as many directions"):
        BirkhoffChart([0.0] * 4, eye, [{"power": 3, "directions": [[1.0, 0, 0, 0]], "coefficients": [1.0, 2.0]}])
    with pytest.raises(ValueError, match="power >= 2"):
        BirkhoffChart([0.0] * 4, eye, [{"power": 1, "directions": [[1.0, 0, 0, 0]], "coefficients": [1.0]}])


@pytest.mark.xdist_group("toda_birkhoff_spec")  # one worker builds the module fixture once
def test_toda_loop_orbits_keep_their_sense_and_the_birkhoff_chart_conserves_their_actions(toda_birkhoff_spec) -> None:
    """Loops of one sense: the normal-mode chart's small polarization winds anomalously on some of them and its
    actions vary by 10–30 %; the degree-4 normalized chart winds every plane once per loop with actions
    conserved to ~1e-2 (to ~3e-3 at degree 5), before any training."""
    system = CentreOfMassFrame(Toda(3, periodic=True))
    initial = toda_loop_orbits(system, 24, torch.Generator().manual_seed(0))
    assert initial.shape == (24, 4)
    data = trajectories(system, 24, (15.0, 200), initial=initial)
    plain = ActionAngleFlow(2, chart=normal_mode_chart(system, [0.0] * 4, circular=[(0, 1)]), blocks=0, householder=0)
    with torch.no_grad():
        actions = plain.to_action_angle(data.states)[0]
    assert bool((actions[..., 0] > actions[..., 1]).all())
    normalized = ActionAngleFlow(2, chart=toda_birkhoff_spec, blocks=0, householder=0)
    before = evaluate(plain, data.states, data.times)["action_conservation"]
    after = evaluate(normalized, data.states, data.times)
    assert max(after["action_conservation"]) < 0.04 and max(before) > 0.15
    with torch.no_grad():
        angles = unwrap(normalized.to_action_angle(data.states)[1], dim=1)
    turns = angles[:, -1] - angles[:, 0]
    torch.testing.assert_close(turns[:, 1] / turns[:, 0], torch.ones(24, dtype=torch.float64), rtol=0, atol=0.15)
    assert min(after["angle_r2"]) > 0.9999
    negative = toda_loop_orbits(system, 4, torch.Generator().manual_seed(0), sense=-1)
    data = trajectories(system, 4, (15.0, 200), initial=negative)
    with torch.no_grad():
        actions = plain.to_action_angle(data.states)[0]
    assert bool((actions[..., 0] < actions[..., 1]).all())
    with pytest.raises(ValueError, match="CentreOfMassFrame"):
        toda_loop_orbits(CentreOfMassFrame(Toda(4, periodic=True)), 4)
    with pytest.raises(ValueError, match="sense"):
        toda_loop_orbits(system, 4, sense=0)
