"""``canonflow/integrators/conformal.py``: the damped oscillator to second order, the exact contraction of the
symplectic form, and where the damping comes from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from canonflow.integrators import (
    INTEGRATORS,
    leapfrog,
)
from canonflow.phase_space import symplectic_form
from canonflow.systems import HarmonicOscillator, Pendulum
from integrators.common import DT, IMPLICIT, damped_oscillator_flow, defect, map_jacobian


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
