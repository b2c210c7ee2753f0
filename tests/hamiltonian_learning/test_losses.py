"""``canonflow/hamiltonian_learning/losses.py``: the derivative and window losses vanish on the true dynamics
only, the adjoint's gradients are backpropagation's, and the window loss checks its options."""

from __future__ import annotations

import pytest
import torch
from randomness import fixed_manual_seed

from canonflow.hamiltonian_learning import (
    DerivativeLoss,
    HamiltonianNet,
    WindowLoss,
    derivative_pairs,
    windows,
)
from canonflow.integrators import implicit_midpoint, implicit_midpoint_adjoint
from canonflow.systems import HarmonicOscillator
from hamiltonian_learning.common import box_data


def test_adjoint_and_backprop_gradients_agree() -> None:
    fixed_manual_seed(0)
    model = HamiltonianNet(1, hidden=16, depth=2, dtype="float64")
    x0 = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(9, 6, 2, dtype=torch.float64)

    def gradients(integrator: object) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        x0.grad = None
        path = integrator(model, x0, 0.1, 8, trajectory=True, tol=1e-13)
        (path - targets).pow(2).mean().backward()
        return [x0.grad.clone(), *(p.grad.clone() for p in model.parameters())]

    def running_loss(h: float, steps: int, *, tol: float) -> torch.Tensor:
        # the same loss accumulated state by state (nothing of size O(steps) is kept)
        loss = implicit_midpoint_adjoint(model, x0, h, steps, loss=lambda k, x: (x - targets[k]).pow(2).sum(), tol=tol)
        return loss / targets.numel()

    def gradients_of_running_loss() -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        x0.grad = None
        running_loss(0.1, 8, tol=1e-13).backward()
        return [x0.grad.clone(), *(p.grad.clone() for p in model.parameters())]

    expected = gradients(implicit_midpoint)
    for actual in (gradients(implicit_midpoint_adjoint), gradients_of_running_loss()):
        for e, a in zip(expected, actual, strict=True):
            torch.testing.assert_close(a, e, rtol=1e-8, atol=1e-10)


def test_derivative_and_window_losses_vanish_on_the_true_dynamics_only() -> None:
    system = HarmonicOscillator(1, omega=1.5)  # separable, so leapfrog applies
    data = box_data(system, points=9, dt=0.05)
    pairs = derivative_pairs(data.clean_states, 0.05, data.derivatives, "exact", "test")
    assert pairs.shape == (16 * 9, 2, 2)
    torch.testing.assert_close(pairs[1], torch.stack([data.clean_states[0, 1], data.derivatives[0, 1]]))
    assert DerivativeLoss()(system, pairs) < 1e-20
    assert DerivativeLoss()(system, pairs * torch.tensor([[1.0], [1.1]], dtype=torch.float64)) > 1e-3
    rows = windows(data.clean_states, 3, "test")
    assert rows.shape == (16 * 6, 4, 2)
    torch.testing.assert_close(rows[1], data.clean_states[0, 1:5], rtol=0, atol=0)
    for integrator, adjoint in (("leapfrog", False), ("implicit_midpoint", False), ("implicit_midpoint", True)):
        loss = WindowLoss(0.05, integrator, substeps=8, adjoint=adjoint, tol=1e-13)
        # the integrators' error at h = 0.05 / 8 is O(h²) ≈ 1e-5 per unit time, so the squared error is ~1e-11
        assert loss(system, rows) < 1e-9, integrator
        assert loss(system, rows.flip(1)) > 1e-3, integrator
    exact = WindowLoss(0.05, substeps=2, tol=1e-13)(system, rows)
    adjoint = WindowLoss(0.05, substeps=2, adjoint=True, tol=1e-13)(system, rows)
    torch.testing.assert_close(adjoint, exact, rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"integrator": "rk4"}, "integrator must be one of"),
        ({"integrator": "leapfrog", "adjoint": True}, "adjoint=True needs"),
        ({"substeps": 0}, "substeps"),
        ({"dt": 0.0}, "dt"),
    ],
)
def test_window_loss_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"WindowLoss.*{message}"):
        WindowLoss(**{"dt": 0.1, **options})
