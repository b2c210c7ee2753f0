"""The closed-form part gradients of a separable ``HamiltonianNet`` against autograd, and leapfrog through them."""

from __future__ import annotations

import pytest
import torch
from randomness import gen

from canonflow.autodiff import vector_jacobian_product
from canonflow.hamiltonian_learning import HamiltonianNet
from canonflow.integrators import leapfrog


class AutogradParts(HamiltonianNet):
    """The same model without its closed-form gradients: the integrators differentiate ``kinetic``/``potential``."""

    part_gradients = None


def randomized(cls: type[HamiltonianNet], k: int, **options: object) -> HamiltonianNet:
    """A float64 separable model with all parameters drawn from N(0, 1) (not the zero initial closed-form part)."""
    model = cls(2, hidden=8, depth=2, separable=True, dtype="float64", **options)
    generator = gen(k)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model


@pytest.mark.parametrize("activation", ["tanh", "softplus", "silu", "gelu"])
@pytest.mark.parametrize("closed_form", [{}, {"quadratic": True}, {"polynomial": 3}])
def test_part_gradients_match_autograd_with_their_parameter_gradients(activation: str, closed_form: dict) -> None:
    model = randomized(HamiltonianNet, 1, activation=activation, **closed_form)
    z = (3.0 * torch.randn(16, 2, generator=gen(2), dtype=torch.float64)).requires_grad_(True)
    inputs = [z, *model.parameters()]
    for energy, closed in ((model.kinetic, model.kinetic_gradient), (model.potential, model.potential_gradient)):
        reference = vector_jacobian_product(energy, z, z.new_ones(16))
        value = closed(z)
        assert torch.allclose(value, reference, rtol=1e-13, atol=1e-13)
        expected = torch.autograd.grad(reference.sin().sum(), inputs, allow_unused=True)
        got = torch.autograd.grad(value.sin().sum(), inputs, allow_unused=True)
        for a, b in zip(expected, got, strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.allclose(b, a, rtol=1e-11, atol=1e-11)


def test_leapfrog_through_part_gradients_equals_autograd_parts() -> None:
    closed, plain = randomized(HamiltonianNet, 3, quadratic=True), randomized(AutogradParts, 3, quadratic=True)
    x0 = torch.randn(8, 4, generator=gen(4), dtype=torch.float64)
    paths = [leapfrog(model, x0, 0.05, 6, trajectory=True) for model in (closed, plain)]
    assert torch.allclose(paths[0], paths[1], rtol=1e-12, atol=1e-12)
    grads = [
        torch.autograd.grad(path.square().sum(), list(model.parameters()))
        for path, model in zip(paths, (closed, plain), strict=True)
    ]
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_part_gradients_need_a_separable_model() -> None:
    with pytest.raises(NotImplementedError, match="part_gradients"):
        HamiltonianNet(1).kinetic_gradient(torch.zeros(3, 1))
