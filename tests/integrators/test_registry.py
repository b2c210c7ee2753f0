"""``canonflow/integrators/__init__.py``: every method of the registry, measured: order of accuracy,
symplecticity, time reversibility, shapes, differentiability, input errors, and the records that state them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import manual_seed

from canonflow.integrators import (
    INTEGRATORS,
    METHODS,
    get_integrator,
    yoshida6,
)
from canonflow.systems import CoupledOscillator, HarmonicOscillator, Kepler, Pendulum
from integrators.common import DT, IMPLICIT, ORDERS, NonSeparable, defect, map_jacobian, pendulum_reference

# Step counts over T = 2 chosen in the asymptotic regime, with errors well above round-off (1e-13).
STEP_COUNTS = {"yoshida6": [8, 12, 18, 27]}
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
