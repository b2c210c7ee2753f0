"""``leapfrog_window`` (leapfrog windows by their discrete adjoint) against backpropagation through ``leapfrog``."""

from __future__ import annotations

import pytest
import torch
from randomness import gen

from canonflow.hamiltonian_learning import HamiltonianNet
from canonflow.hamiltonian_learning.leapfrog_adjoint import leapfrog_window, leapfrog_window_supported
from canonflow.hamiltonian_learning.losses import WindowLoss
from canonflow.integrators import leapfrog


def randomized(k: int, **options: object) -> HamiltonianNet:
    """A float64 separable model with every parameter drawn from N(0, 1) (not the zero initial closed-form part)."""
    model = HamiltonianNet(**{"n": 2, "hidden": 8, "depth": 2, "separable": True, "dtype": "float64", **options})
    generator = gen(k)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model


@pytest.mark.parametrize("options", [{}, {"quadratic": True}, {"depth": 1}, {"depth": 3, "quadratic": True}])
@pytest.mark.parametrize("every", [1, 3])
def test_leapfrog_window_equals_backpropagation_through_leapfrog(options: dict, every: int) -> None:
    model = randomized(1, **options)
    x0 = torch.randn(6, 4, generator=gen(2), dtype=torch.float64).requires_grad_(True)
    target = torch.randn(2, 6, 4, generator=gen(3), dtype=torch.float64)
    inputs = [x0, *model.parameters()]
    fast = leapfrog_window(model, x0, 0.07, 2 * every, every)
    generic = leapfrog(model, x0, 0.07, 2 * every, trajectory=True)[every::every]
    assert fast.shape == generic.shape == (2, 6, 4)
    assert torch.allclose(fast, generic, rtol=1e-12, atol=1e-12)
    expected = torch.autograd.grad((generic - target).pow(2).mean(), inputs)
    got = torch.autograd.grad((fast - target).pow(2).mean(), inputs)
    for a, b in zip(expected, got, strict=True):
        assert torch.allclose(b, a, rtol=1e-12, atol=1e-12)


def test_window_loss_takes_the_adjoint_with_the_generic_values() -> None:
    model = randomized(4, quadratic=True)
    batch = torch.randn(5, 4, 4, generator=gen(5), dtype=torch.float64)
    loss = WindowLoss(0.1, "leapfrog", substeps=2)
    fast = loss(model, batch)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    path = leapfrog(model, batch[:, 0], 0.05, 6, trajectory=True)[2::2]
    generic = (path - batch[:, 1:].transpose(0, 1)).pow(2).mean()
    generic_grads = torch.autograd.grad(generic, list(model.parameters()))
    assert torch.allclose(fast, generic, rtol=1e-12, atol=0.0)
    for a, b in zip(generic_grads, fast_grads, strict=True):
        assert torch.allclose(b, a, rtol=1e-12, atol=1e-12)


def test_supported_models() -> None:
    assert leapfrog_window_supported(HamiltonianNet(1, separable=True))
    assert leapfrog_window_supported(HamiltonianNet(1, separable=True, quadratic=True))
    assert not leapfrog_window_supported(HamiltonianNet(1))
    assert not leapfrog_window_supported(HamiltonianNet(1, separable=True, activation="softplus"))
    assert not leapfrog_window_supported(HamiltonianNet(1, separable=True, polynomial=2))
    assert not leapfrog_window_supported(HamiltonianNet(1, separable=True, damping=True))
    assert not leapfrog_window_supported(HamiltonianNet(1, depth=0, separable=True, quadratic=True))

    class Hidden(HamiltonianNet):
        separable_parts = False

    class Replaced(HamiltonianNet):
        part_gradients = None

    assert not leapfrog_window_supported(Hidden(1, separable=True))
    assert not leapfrog_window_supported(Replaced(1, separable=True))


def test_leapfrog_window_rejects_what_it_does_not_handle() -> None:
    x0 = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="leapfrog_window: expected a separable"):
        leapfrog_window(HamiltonianNet(1), x0, 0.1, 2, 1)
    model = HamiltonianNet(1, separable=True)
    with pytest.raises(TypeError, match="leapfrog_window: expected step_size to be a float"):
        leapfrog_window(model, x0, torch.tensor(0.1), 2, 1)
    with pytest.raises(ValueError, match="multiple of every"):
        leapfrog_window(model, x0, 0.1, 3, 2)
    with pytest.raises(ValueError, match="leapfrog_window"):
        leapfrog_window(model, torch.full((3, 2), float("nan")), 0.1, 2, 1)
    with pytest.raises(ValueError, match=r"leapfrog_window: expected x0 of shape \(B, 2\)"):
        leapfrog_window(model, torch.zeros(3, 4), 0.1, 2, 1)


def test_leapfrog_window_refuses_a_second_derivative() -> None:
    model = randomized(6)
    x0 = torch.randn(3, 4, generator=gen(7), dtype=torch.float64)
    loss = leapfrog_window(model, x0, 0.1, 2, 1).pow(2).sum()
    (grad,) = torch.autograd.grad(loss, [model.networks[0].net[0].weight], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()
