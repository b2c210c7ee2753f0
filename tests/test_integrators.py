"""Tests of canonflow.integrators: order of accuracy, long-time energy behaviour, symplecticity, reversibility,
conservation of angular momentum, differentiability and input errors."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from randomness import manual_seed
from scipy.integrate import solve_ivp

from canonflow.integrators import (
    INTEGRATORS,
    METHODS,
    ConvergenceError,
    HamiltonianGradient,
    Method,
    get_integrator,
    implicit_midpoint,
    integrate,
    leapfrog,
    rk4,
    symplectic_euler,
    yoshida4,
    yoshida6,
)
from canonflow.phase_space import symplectic_form
from canonflow.systems import CoupledOscillator, HarmonicOscillator, Kepler, Pendulum

DT = torch.float64


class FastOscillator(HarmonicOscillator):
    """The unit oscillator with the optional analytic ``gradient`` hook, for long runs."""

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FastPendulum(Pendulum):
    """The unit pendulum ``H = p²/2 + 1 - cos q`` with the optional analytic ``gradient`` hook."""

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.sin(x[:, 0]), x[:, 1]], -1)


def pendulum_reference(x0: torch.Tensor, t: float) -> torch.Tensor:
    """The pendulum's time-``t`` flow by DOP853 at tight tolerances."""
    rows = []
    for q, p in x0.tolist():
        sol = solve_ivp(
            lambda _, y: [y[1], -math.sin(y[0])], (0.0, t), [q, p], method="DOP853", rtol=2.3e-14, atol=1e-14
        )
        rows.append(sol.y[:, -1])
    return torch.tensor(np.array(rows), dtype=x0.dtype)


class NonSeparable:
    """A nonlinear, non-separable ``H = (q² + p²)/2 + q²p²/4`` (n = 1), as a plain callable."""

    separable = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[:, 0], x[:, 1]
        return 0.5 * (q**2 + p**2) + 0.25 * q**2 * p**2


def map_jacobian(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Per-sample Jacobians ``(B, 2n, 2n)`` of a batch-independent map ``fn``."""
    x = x.detach().requires_grad_(True)
    y = fn(x)
    rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(rows, 1)


def defect(jac: torch.Tensor) -> float:
    omega = symplectic_form(jac.shape[-1] // 2, dtype=jac.dtype)
    return (jac.transpose(1, 2) @ omega @ jac - omega).abs().max().item()


ORDERS = {
    "symplectic_euler": 1,
    "leapfrog": 2,
    "yoshida4": 4,
    "yoshida6": 6,
    "implicit_midpoint": 2,
    "rk4": 4,
    "conformal_leapfrog": 2,
    "conformal_midpoint": 2,
}
# Step counts over T = 2 chosen in the asymptotic regime, with errors well above round-off (1e-13).
STEP_COUNTS = {"yoshida6": [8, 12, 18, 27]}


IMPLICIT = {"implicit_midpoint", "conformal_midpoint"}
ORDER_CASES = [(name, "oscillator") for name in ORDERS] + [(name, "pendulum") for name in ORDERS]
ORDER_CASES += [("implicit_midpoint", "coupled_oscillator"), ("rk4", "coupled_oscillator")]


@pytest.mark.parametrize(("name", "system_name"), ORDER_CASES)
def test_measured_order_of_accuracy(name: str, system_name: str) -> None:
    integrator = get_integrator(name)
    extra = {"tol": 1e-15} if name in IMPLICIT else {}
    x0 = torch.tensor([[1.0, 0.5], [-0.3, 1.2]], dtype=DT)
    t_end = 2.0
    if system_name == "pendulum":
        system, reference = Pendulum(), pendulum_reference(x0, t_end)
    else:
        system = HarmonicOscillator() if system_name == "oscillator" else CoupledOscillator(0.5)
        reference = system.exact_flow(x0, t_end)
    counts = STEP_COUNTS.get(name, [10, 20, 40, 80])
    errors = [(integrator(system, x0, t_end / m, m, **extra) - reference).abs().max().item() for m in counts]
    assert min(errors) > 1e-12, f"{name}: errors {errors} reach round-off; the measured slope would be meaningless"
    slope = np.polyfit(np.log(t_end / np.array(counts)), np.log(errors), 1)[0]
    assert abs(slope - ORDERS[name]) <= 0.15, f"{name}: measured order {slope:.3f}, expected {ORDERS[name]}"


def explicit_euler(x0: torch.Tensor, h: float, steps: int) -> torch.Tensor:
    """Forward Euler ``x' = x + h Ω∇H(x)`` (not symplectic) for the oscillator, trajectory ``(steps + 1, B, 2)``."""
    states = [x0]
    x = x0
    for _ in range(steps):
        x = x + h * torch.stack([x[:, 1], -x[:, 0]], -1)
        states.append(x)
    return torch.stack(states)


def energy_error(system: object, trajectory: torch.Tensor) -> torch.Tensor:
    """``max_b |H(x_k) - H(x_0)|`` for every step ``k``, shape ``(steps + 1,)``."""
    energy = system(trajectory.reshape(-1, 2)).reshape(trajectory.shape[:2])
    return (energy - energy[0]).abs().amax(-1)


STEPS_LONG = 20_000  # 318 periods of the oscillator at h = 0.1; the growth ratios below do not depend on it
X0_OSCILLATOR = torch.tensor([[1.0, 0.0], [0.5, 0.8], [-2.0, 0.3]], dtype=DT)
X0_PENDULUM = torch.tensor([[1.0, 0.0], [0.5, 0.8], [2.0, 0.3]], dtype=DT)


@pytest.mark.parametrize(("name", "h"), [("symplectic_euler", 0.1), ("leapfrog", 0.25)])
def test_symplectic_energy_error_stays_bounded_over_2e4_steps(name: str, h: float) -> None:
    system = FastOscillator()
    with torch.no_grad():
        trajectory = INTEGRATORS[name](system, X0_OSCILLATOR, h, STEPS_LONG, trajectory=True)
    error = energy_error(system, trajectory)
    tenth = STEPS_LONG // 10
    early, late = error[:tenth].max().item(), error[-tenth:].max().item()
    assert late <= 1.01 * early, f"{name}: energy error grew from {early:.3e} to {late:.3e}"
    assert error.max().item() < 0.2


def test_rk4_and_explicit_euler_energy_drifts_over_2e4_steps() -> None:
    system = FastOscillator()
    tenth = STEPS_LONG // 10
    with torch.no_grad():
        for label, trajectory in (
            ("rk4", rk4(system, X0_OSCILLATOR, 0.25, STEPS_LONG, trajectory=True)),
            ("explicit euler", explicit_euler(X0_OSCILLATOR, 1e-3, STEPS_LONG)),
        ):
            error = energy_error(system, trajectory)
            early, late = error[:tenth].max().item(), error[-1].item()
            assert late >= 5.0 * early, f"{label}: energy error {early:.3e} -> {late:.3e} should drift secularly"


@pytest.mark.parametrize(("name", "h", "steps"), [("yoshida4", 0.25, 10_000), ("yoshida6", 0.25, 5_000)])
def test_higher_order_energy_error_stays_bounded(name: str, h: float, steps: int) -> None:
    system = FastPendulum()
    with torch.no_grad():
        error = energy_error(system, INTEGRATORS[name](system, X0_PENDULUM, h, steps, trajectory=True))
    early, late = error[: steps // 10].max().item(), error[-steps // 10 :].max().item()
    assert late <= 1.1 * early + 1e-12, f"{name}: energy error grew from {early:.3e} to {late:.3e}"


def test_implicit_midpoint_conserves_quadratic_energy() -> None:
    x0 = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=DT)
    with torch.no_grad():
        trajectory = implicit_midpoint(FastOscillator(), x0, 0.3, 1000, trajectory=True, tol=1e-15)
    energy = 0.5 * (trajectory**2).sum(-1)
    assert (energy - energy[0]).abs().max().item() < 1e-10


SYMPLECTIC_CASES = [
    ("symplectic_euler", Pendulum()),
    ("leapfrog", Pendulum()),
    ("yoshida4", Kepler(2)),
    ("yoshida6", Kepler(2)),
    ("implicit_midpoint", NonSeparable()),
    ("implicit_midpoint", Kepler(2)),
]


@pytest.mark.parametrize(
    ("name", "system"), SYMPLECTIC_CASES, ids=[f"{a}-{type(b).__name__}" for a, b in SYMPLECTIC_CASES]
)
def test_one_step_and_multistep_maps_are_symplectic(name: str, system: object) -> None:
    n = 2 if isinstance(system, Kepler) else 1
    manual_seed(0)
    x0 = torch.randn(6, 2 * n, dtype=DT)
    if n == 2:
        x0[:, :2] = x0[:, :2] / x0[:, :2].norm(dim=-1, keepdim=True) * 1.5  # keep away from the Kepler singularity
    extra = {"tol": 1e-14} if name == "implicit_midpoint" else {}
    for steps in (1, 5):
        jac = map_jacobian(lambda x, s=steps: INTEGRATORS[name](system, x, 0.2, s, **extra), x0)
        assert defect(jac) <= 1e-10, f"{name}: symplectic defect {defect(jac):.3e} after {steps} steps"


def test_rk4_is_not_symplectic() -> None:
    x0 = torch.tensor([[1.0, 0.3], [2.0, -0.5]], dtype=DT)
    jac = map_jacobian(lambda x: rk4(Pendulum(), x, 0.3, 5), x0)
    assert defect(jac) > 1e-6


@pytest.mark.parametrize("name", ["leapfrog", "yoshida4", "yoshida6", "implicit_midpoint"])
def test_symmetric_methods_are_time_reversible(name: str) -> None:
    integrator = INTEGRATORS[name]
    system = Pendulum()
    x0 = torch.tensor([[1.0, 0.5], [2.5, -0.1], [-0.4, 1.7]], dtype=DT)
    xn = integrator(system, x0, 0.2, 50)
    assert (xn - x0).abs().max() > 0.1
    back = integrator(system, xn, -0.2, 50)
    assert (back - x0).abs().max().item() <= 1e-11
    # Momentum flip: running forward from the flipped end point returns to the flipped start.
    flip = torch.tensor([1.0, -1.0], dtype=DT)
    assert (integrator(system, xn * flip, 0.2, 50) - x0 * flip).abs().max().item() <= 1e-11


def test_symplectic_euler_is_not_symmetric() -> None:
    system = Pendulum()
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    back = symplectic_euler(system, symplectic_euler(system, x0, 0.2, 10), -0.2, 10)
    assert (back - x0).abs().max().item() > 1e-4


def test_kepler_angular_momentum_is_conserved() -> None:
    system = Kepler(2)
    # Eccentric orbits (e ≈ 0.5 and 0.3).
    x0 = torch.tensor([[1.0, 0.0, 0.0, 1.2], [0.0, 1.0, -1.1, 0.2]], dtype=DT)
    with torch.no_grad():
        midpoint = implicit_midpoint(system, x0, 0.05, 400, trajectory=True, tol=1e-14)
        baseline = rk4(system, x0, 0.05, 400, trajectory=True)
    momentum = system.angular_momentum
    drift = (momentum(midpoint.reshape(-1, 4)) - momentum(x0).repeat(401)).abs().max().item()
    assert drift <= 1e-12, f"implicit midpoint angular momentum drift {drift:.3e}"
    assert (momentum(baseline[-1]) - momentum(x0)).abs().max().item() > 1e-8


@pytest.mark.parametrize("name", list(INTEGRATORS))
def test_trajectory_shapes_and_no_grad(name: str) -> None:
    integrator = INTEGRATORS[name]
    system = Pendulum()
    x0 = torch.tensor([[1.0, 0.5], [0.2, -0.3], [0.0, 1.0]], dtype=DT)
    trajectory = integrator(system, x0, 0.1, 7, trajectory=True)
    assert trajectory.shape == (8, 3, 2)
    assert torch.equal(trajectory[0], x0)
    final = integrator(system, x0, 0.1, 7)
    assert final.shape == (3, 2)
    torch.testing.assert_close(trajectory[-1], final, rtol=0, atol=1e-15)
    with torch.no_grad():
        quiet = integrator(system, x0, 0.1, 7)
    assert not quiet.requires_grad
    torch.testing.assert_close(quiet, final, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", list(INTEGRATORS))
def test_differentiable_in_x0_step_size_and_parameters(name: str) -> None:
    integrator = INTEGRATORS[name]
    weight = torch.tensor(0.7, dtype=DT, requires_grad=True)

    def hamiltonian(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x[:, 1] ** 2 - weight * torch.cos(x[:, 0])

    x0 = torch.tensor([[1.0, 0.5], [0.2, -0.3]], dtype=DT, requires_grad=True)
    h = torch.tensor(0.15, dtype=DT, requires_grad=True)
    extra = {"tol": 1e-14} if name in IMPLICIT else {}

    assert torch.autograd.gradcheck(lambda x, step: integrator(hamiltonian, x, step, 3, **extra), (x0, h))
    integrator(hamiltonian, x0, h, 3, **extra).sum().backward()
    assert weight.grad is not None and weight.grad.abs().item() > 0


def test_get_integrator_and_unknown_name() -> None:
    assert get_integrator("yoshida6") is yoshida6
    assert set(INTEGRATORS) == set(ORDERS) == set(METHODS)
    with pytest.raises(ValueError, match="unknown integrator 'verlet'.*leapfrog"):
        get_integrator("verlet")


@pytest.mark.parametrize("name", list(INTEGRATORS))
def test_input_errors_name_the_integrator(name: str) -> None:
    integrator = INTEGRATORS[name]
    system = Pendulum()
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    with pytest.raises(ValueError, match=f"{name}.*steps"):
        integrator(system, x0, 0.1, 0)
    with pytest.raises(TypeError, match=f"{name}.*steps"):
        integrator(system, x0, 0.1, 2.0)
    for bad in (0.0, math.nan, math.inf, torch.tensor(0.0), torch.tensor([0.1, 0.2])):
        with pytest.raises(ValueError, match=f"{name}.*step_size"):
            integrator(system, x0, bad, 3)
    with pytest.raises(TypeError, match=f"{name}.*step_size"):
        integrator(system, x0, "0.1", 3)
    with pytest.raises(ValueError, match=f"{name}.*NaN"):
        integrator(system, torch.tensor([[math.nan, 0.0]], dtype=DT), 0.1, 3)
    with pytest.raises(ValueError, match=f"{name}.*shape"):
        integrator(system, torch.zeros(2, 3, dtype=DT), 0.1, 3)
    with pytest.raises(ValueError, match=f"{name}.*Hamiltonian must map"):
        integrator(lambda x: 0.5 * x**2, x0, 0.1, 3)
    with pytest.raises(TypeError, match=name):
        integrator(system, [[1.0, 0.5]], 0.1, 3)


@pytest.mark.parametrize("name", ["symplectic_euler", "leapfrog", "yoshida4", "yoshida6"])
def test_splitting_methods_refuse_non_separable_hamiltonians(name: str) -> None:
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    with pytest.raises(ValueError, match=f"{name}.*separable"):
        INTEGRATORS[name](NonSeparable(), x0, 0.1, 3)


@pytest.mark.parametrize("name", ["implicit_midpoint", "rk4"])
def test_general_methods_accept_non_separable_hamiltonians(name: str) -> None:
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    assert torch.isfinite(INTEGRATORS[name](NonSeparable(), x0, 0.1, 3)).all()


def test_implicit_midpoint_convergence_error_carries_residual_and_step() -> None:
    x0 = torch.tensor([[1.0, 0.5], [2.0, 0.0]], dtype=DT)
    with pytest.raises(ConvergenceError, match="implicit_midpoint.*did not converge") as info:
        implicit_midpoint(NonSeparable(), x0, 0.3, 5, max_iter=1, tol=1e-14)
    assert info.value.step == 0
    assert info.value.iterations == 1
    assert info.value.residual > 1e-14
    # A solve that converges fine with the default max_iter.
    assert torch.isfinite(implicit_midpoint(NonSeparable(), x0, 0.3, 5)).all()
    # The step index reported is the one that failed.
    with pytest.raises(ConvergenceError) as info:
        implicit_midpoint(NonSeparable(), torch.tensor([[0.1, 0.1]], dtype=DT), 0.3, 3, max_iter=3, tol=1e-14)
    assert info.value.step >= 0 and info.value.residual > 0
    with pytest.raises(ValueError, match="tol"):
        implicit_midpoint(NonSeparable(), x0, 0.1, 3, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        implicit_midpoint(NonSeparable(), x0, 0.1, 3, max_iter=0)


def test_leapfrog_matches_explicit_formula_and_uses_analytic_gradient() -> None:
    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    q, p, h = 1.0, 0.5, 0.1
    p_half = p - 0.5 * h * math.sin(q)
    q1 = q + h * p_half
    p1 = p_half - 0.5 * h * math.sin(q1)
    expected = torch.tensor([[q1, p1]], dtype=DT)
    torch.testing.assert_close(leapfrog(FastPendulum(), x0, h, 1), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(leapfrog(Pendulum(), x0, h, 1), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(yoshida4(FastPendulum(), x0, h, 2), yoshida4(Pendulum(), x0, h, 2))


@pytest.mark.parametrize("name", ["symplectic_euler", "leapfrog", "yoshida4", "yoshida6"])
def test_splitting_methods_refuse_non_separable_systems(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}.*separable=False"):
        INTEGRATORS[name](CoupledOscillator(0.5), torch.tensor([[1.0, 0.5]], dtype=DT), 0.1, 3)


SYMMETRIC = {"leapfrog", "yoshida4", "yoshida6", "implicit_midpoint", "conformal_leapfrog", "conformal_midpoint"}
SPLITTING = {"symplectic_euler", "leapfrog", "yoshida4", "yoshida6", "conformal_leapfrog"}
DISSIPATIVE = {"conformal_leapfrog", "conformal_midpoint"}


def test_method_records_state_the_properties_the_tests_above_measure() -> None:
    for name, method in METHODS.items():
        assert method.name == name and method.order == ORDERS[name], name
        assert method.symmetric == (name in SYMMETRIC), name
        assert method.separable == (name in SPLITTING), name
        assert method.symplectic == (name not in {"rk4"} | DISSIPATIVE), name
        assert method.dissipative == (name in DISSIPATIVE), name


def test_a_new_method_is_a_step_function_and_a_record() -> None:
    """Forward Euler ``x' = x + h Ω∇H(x)`` through ``integrate``: first order, input errors naming it."""

    def euler_step(
        gradient: HamiltonianGradient, x: torch.Tensor, h: float, carry: None, k: int
    ) -> tuple[torch.Tensor, None]:
        return x + h * gradient.field(x), None

    euler = Method("explicit_euler", 1, euler_step, separable=False, symplectic=False, symmetric=False)
    x0 = torch.tensor([[1.0, 0.5], [-0.3, 1.2]], dtype=DT)
    torch.testing.assert_close(
        integrate(euler, FastOscillator(), x0, 1e-3, 100, trajectory=True)[1:],
        explicit_euler(x0, 1e-3, 100)[1:],
        rtol=0,
        atol=1e-15,
    )
    system = HarmonicOscillator()
    counts = [100, 200, 400, 800]
    errors = [
        (integrate(euler, system, x0, 2.0 / m, m) - system.exact_flow(x0, 2.0)).abs().max().item() for m in counts
    ]
    slope = np.polyfit(np.log(2.0 / np.array(counts)), np.log(errors), 1)[0]
    assert abs(slope - 1.0) <= 0.15, slope
    with pytest.raises(ValueError, match="explicit_euler.*steps"):
        integrate(euler, system, x0, 0.1, 0)


# ---------------------------------------------------------------------------------------------- damped, separable parts
def damped_oscillator_flow(x0: torch.Tensor, gamma: float, t: float) -> torch.Tensor:
    """The exact flow of ``q̇ = p``, ``ṗ = −q − γp`` (underdamped, ``γ < 2``) from ``x0`` ``(B, 2)``."""
    a, w = -0.5 * gamma, math.sqrt(1.0 - 0.25 * gamma**2)
    c, s, e = math.cos(w * t), math.sin(w * t), math.exp(a * t)
    # x(t) = e^{at} [cos(wt) I + sin(wt)/w (A − a I)] x0 with A = [[0, 1], [−1, −γ]]
    matrix = torch.tensor([[c - a * s / w, s / w], [-s / w, c + (-gamma - a) * s / w]], dtype=x0.dtype) * e
    return x0 @ matrix.T


class Parts:
    """``H = p²/2 + (1 − cos q)`` with its parts; counts how often the full ``H`` and each part are evaluated."""

    separable = True
    separable_parts = True

    def __init__(self) -> None:
        self.calls = {"full": 0, "kinetic": 0, "potential": 0}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls["full"] += 1
        return self.kinetic(x[:, 1:]) + self.potential(x[:, :1])

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        self.calls["kinetic"] += 1
        return 0.5 * p[:, 0] ** 2

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        self.calls["potential"] += 1
        return 1.0 - torch.cos(q[:, 0])


@pytest.mark.parametrize("name", ["conformal_leapfrog", "conformal_midpoint"])
def test_conformal_methods_integrate_the_damped_oscillator_to_second_order(name: str) -> None:
    x0 = torch.tensor([[1.0, 0.5], [-0.3, 1.2]], dtype=DT)
    reference = damped_oscillator_flow(x0, 0.3, 2.0)
    extra = {"tol": 1e-15} if name in IMPLICIT else {}
    counts = [10, 20, 40, 80]
    errors = [
        (INTEGRATORS[name](HarmonicOscillator(), x0, 2.0 / m, m, damping=0.3, **extra) - reference).abs().max().item()
        for m in counts
    ]
    slope = np.polyfit(np.log(2.0 / np.array(counts)), np.log(errors), 1)[0]
    assert abs(slope - 2.0) <= 0.15, (name, slope, errors)


@pytest.mark.parametrize("name", ["conformal_leapfrog", "conformal_midpoint"])
def test_conformal_methods_contract_the_symplectic_form_exactly(name: str) -> None:
    # Φ_h^*ω = e^{−γh}ω for every step, on a nonlinear H: JᵀΩJ = e^{−γ h L} Ω for L steps
    gamma, h, steps = 0.4, 0.2, 3
    x0 = torch.tensor([[1.0, 0.5], [2.0, -0.7]], dtype=DT)
    extra = {"tol": 1e-15} if name in IMPLICIT else {}
    jac = map_jacobian(lambda x: INTEGRATORS[name](Pendulum(), x, h, steps, damping=gamma, **extra), x0)
    omega = symplectic_form(1, dtype=DT)
    contracted = jac.transpose(1, 2) @ omega @ jac
    torch.testing.assert_close(
        contracted, math.exp(-gamma * h * steps) * omega.expand_as(contracted), rtol=0, atol=1e-12
    )
    assert defect(jac) > 0.1  # not symplectic: the friction contracts ω by e^{−0.24}


def test_damping_is_taken_from_the_hamiltonian_and_conservative_methods_refuse_it() -> None:
    class Damped(HarmonicOscillator):
        damping = 0.3

    x0 = torch.tensor([[1.0, 0.5]], dtype=DT)
    from_attribute = INTEGRATORS["conformal_leapfrog"](Damped(), x0, 0.1, 5)
    torch.testing.assert_close(
        from_attribute, INTEGRATORS["conformal_leapfrog"](HarmonicOscillator(), x0, 0.1, 5, damping=0.3)
    )
    torch.testing.assert_close(
        INTEGRATORS["conformal_leapfrog"](HarmonicOscillator(), x0, 0.1, 5), leapfrog(HarmonicOscillator(), x0, 0.1, 5)
    )
    for name in ("leapfrog", "implicit_midpoint", "rk4", "yoshida4"):
        with pytest.raises(ValueError, match=f"{name}: the Hamiltonian has a damping.*conformal"):
            INTEGRATORS[name](Damped(), x0, 0.1, 2)
    with pytest.raises(ValueError, match="conformal_midpoint: the Hamiltonian has its own damping"):
        INTEGRATORS["conformal_midpoint"](Damped(), x0, 0.1, 2, damping=0.1)
    for bad in (-0.1, math.nan, torch.tensor([0.1, 0.2], dtype=DT)):
        with pytest.raises(ValueError, match="conformal_leapfrog.*damping"):
            INTEGRATORS["conformal_leapfrog"](HarmonicOscillator(), x0, 0.1, 2, damping=bad)
    # gradients reach a tensor damping
    gamma = torch.tensor(0.3, dtype=DT, requires_grad=True)
    INTEGRATORS["conformal_midpoint"](HarmonicOscillator(), x0, 0.1, 5, damping=gamma).sum().backward()
    assert gamma.grad is not None and gamma.grad.abs().item() > 0


def test_splitting_methods_use_the_separable_parts_alone() -> None:
    x0 = torch.tensor([[1.0, 0.5], [0.2, -0.3]], dtype=DT)
    hamiltonian = Parts()
    path = leapfrog(hamiltonian, x0, 0.1, 4, trajectory=True)
    # L drifts take ∂K/∂p, L + 1 kicks ∂V/∂q (first same as last); the full H is never evaluated
    assert hamiltonian.calls == {"full": 0, "kinetic": 4, "potential": 5}
    torch.testing.assert_close(path, leapfrog(Pendulum(), x0, 0.1, 4, trajectory=True), rtol=0, atol=1e-15)
    hamiltonian.separable_parts = False  # not declared: the full gradient, the same values
    torch.testing.assert_close(leapfrog(hamiltonian, x0, 0.1, 4, trajectory=True), path, rtol=0, atol=1e-15)
    assert hamiltonian.calls["full"] == 9
