"""Warm-started implicit-midpoint solves: the same solution to the tolerance, fewer evaluations of ``∇H``."""

from __future__ import annotations

import torch
from randomness import gen

from canonflow.hamiltonian_learning import HamiltonianNet
from canonflow.hamiltonian_learning.losses import WindowLoss
from canonflow.integrators import implicit_midpoint, implicit_midpoint_adjoint
from canonflow.systems import Pendulum


class Counted:
    """A Hamiltonian that counts its evaluations."""

    def __init__(self) -> None:
        self.system, self.calls = Pendulum(), 0
        self.separable = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.system(x)


def test_warm_start_gives_the_same_solution_with_fewer_evaluations() -> None:
    x0 = torch.randn(5, 2, generator=gen(1), dtype=torch.float64)
    counts, paths = [], []
    for warm in (False, True):
        hamiltonian = Counted()
        paths.append(implicit_midpoint(hamiltonian, x0, 0.05, 20, trajectory=True, tol=1e-13, warm_start=warm))
        counts.append(hamiltonian.calls)
    assert torch.allclose(paths[1], paths[0], rtol=0, atol=1e-11)
    assert counts[1] < counts[0], counts


def test_warm_started_window_loss_and_adjoint_match_the_cold_gradients() -> None:
    model = HamiltonianNet(1, hidden=8, depth=2, dtype="float64")
    rows = 0.5 * torch.randn(6, 5, 2, generator=gen(2), dtype=torch.float64)
    grads = []
    for adjoint, warm in ((False, False), (False, True), (True, True)):
        loss = WindowLoss(0.1, "implicit_midpoint", adjoint=adjoint, tol=1e-13, warm_start=warm)
        grads.append(torch.autograd.grad(loss(model, rows), list(model.parameters())))
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            assert torch.allclose(b, a, rtol=1e-8, atol=1e-10)


def test_adjoint_warm_start_values_match_implicit_midpoint() -> None:
    x0 = torch.randn(4, 2, generator=gen(3), dtype=torch.float64)
    system = Pendulum()
    cold = implicit_midpoint(system, x0, 0.1, 12, trajectory=True)
    warm = implicit_midpoint_adjoint(system, x0, 0.1, 12, trajectory=True, warm_start=True)
    assert torch.allclose(warm, cold, rtol=0, atol=1e-10)
