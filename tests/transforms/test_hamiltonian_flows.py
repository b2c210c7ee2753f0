"""Hamiltonian-flow layers: the shared layer contract, equivalence with the integrators, adjoint gradients."""

from __future__ import annotations

import math

import pytest
import torch
from layer_contract import ALL_CHECKS, randomize_, run_check
from randomness import gen, manual_seed

from canonflow.integrators import ConvergenceError, implicit_midpoint, leapfrog
from canonflow.transforms.hamiltonian_flows import ImplicitMidpointFlow, LeapfrogFlow

DT = torch.float64
DEFAULTS = {"steps": 3, "step_size": 0.15, "hidden": 16}
FACTORIES = {
    "leapfrog": lambda n, **kw: LeapfrogFlow(n, **{**DEFAULTS, **kw}),
    "midpoint": lambda n, **kw: ImplicitMidpointFlow(n, **{**DEFAULTS, **kw}),
    "midpoint-adjoint": lambda n, **kw: ImplicitMidpointFlow(n, adjoint=True, **{**DEFAULTS, **kw}),
}
KINDS = list(FACTORIES)


def make_layer(kind: str, n: int, seed: int = 0, **kwargs: object) -> LeapfrogFlow | ImplicitMidpointFlow:
    """A float64 layer with randomized, non-identity parameters (the defaults start as the identity)."""
    manual_seed(seed)
    return randomize_(FACTORIES[kind](n, **kwargs).double(), seed=seed).eval()


def data(n: int, batch: int = 8, seed: int = 1, dtype: torch.dtype = DT) -> torch.Tensor:
    generator = gen(seed)
    return torch.randn(batch, 2 * n, generator=generator, dtype=dtype)


@pytest.mark.parametrize("n", [1, 2, 3, 8])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(kind: str, n: int, check: str) -> None:
    run_check(check, lambda: make_layer(kind, n), n)


@pytest.mark.parametrize("kind", KINDS)
def test_randomized_layer_is_not_the_identity(kind: str) -> None:
    x = data(2)
    assert (make_layer(kind, 2)(x)[0] - x).abs().max() > 1e-2


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_raise(kind: str) -> None:
    layer = make_layer(kind, 2)
    name = type(layer).__name__
    with pytest.raises(ValueError, match=f"{name}.forward"):
        layer(torch.zeros(3, 5, dtype=DT))
    with pytest.raises(ValueError, match=f"{name}.inverse.*NaN"):
        layer.inverse(torch.full((3, 4), math.nan, dtype=DT))
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.zeros(3, 4, dtype=torch.float32))


@pytest.mark.parametrize("cls", [LeapfrogFlow, ImplicitMidpointFlow])
def test_constructor_errors_and_identity_default(cls: type) -> None:
    with pytest.raises(ValueError, match="steps"):
        cls(2, steps=0)
    with pytest.raises(ValueError, match="step_size"):
        cls(2, step_size=-0.1)
    with pytest.raises(TypeError, match="step_size"):
        cls(2, step_size="0.1")
    layer = cls(2).to(DT)
    x = data(2)
    torch.testing.assert_close(layer(x)[0], x, rtol=0, atol=0)
    torch.testing.assert_close(layer.step_size, torch.tensor(0.1, dtype=DT))


def test_implicit_midpoint_flow_constructor_errors() -> None:
    with pytest.raises(ValueError, match="tol"):
        ImplicitMidpointFlow(2, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        ImplicitMidpointFlow(2, max_iter=0)


def test_leapfrog_flow_is_the_leapfrog_integrator_of_its_hamiltonian() -> None:
    n = 2
    layer = make_layer("leapfrog", n, steps=4)
    kinetic, potential = layer.kinetic_gradient.potential, layer.potential_gradient.potential

    def hamiltonian(x: torch.Tensor) -> torch.Tensor:
        return kinetic(x[:, n:]).reshape(-1) + potential(x[:, :n]).reshape(-1)

    x = data(n)
    eps = layer.step_size.detach()
    torch.testing.assert_close(layer(x)[0], leapfrog(hamiltonian, x, eps, 4), rtol=0, atol=1e-13)
    torch.testing.assert_close(layer.inverse(x)[0], leapfrog(hamiltonian, x, -eps, 4), rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["midpoint", "midpoint-adjoint"])
def test_implicit_midpoint_flow_is_the_implicit_midpoint_integrator(kind: str) -> None:
    layer = make_layer(kind, 2, steps=4)
    x = data(2)
    expected = implicit_midpoint(layer.hamiltonian, x, layer.step_size.detach(), 4, tol=1e-12)
    torch.testing.assert_close(layer(x)[0], expected, rtol=0, atol=1e-11)
    assert layer.last_residual is not None and 0 <= layer.last_residual <= 1e-11


@pytest.mark.parametrize("inverse", [False, True], ids=["forward", "inverse"])
@pytest.mark.parametrize("n", [1, 3])
def test_adjoint_gradients_equal_backprop(n: int, inverse: bool) -> None:
    backprop = make_layer("midpoint", n, steps=8)
    adjoint = make_layer("midpoint-adjoint", n, steps=8)
    adjoint.load_state_dict(backprop.state_dict())
    x = data(n, batch=6)
    target = data(n, batch=6, seed=3)

    def gradients(layer: ImplicitMidpointFlow) -> list[torch.Tensor]:
        x_in = x.clone().requires_grad_(True)
        y, _ = (layer.inverse if inverse else layer)(x_in)
        loss = ((y - target) ** 2).sum() + torch.sin(y[:, 0]).sum()
        return list(torch.autograd.grad(loss, [x_in, *layer.parameters()]))

    expected, actual = gradients(backprop), gradients(adjoint)
    names = ["input", *(name for name, _ in backprop.named_parameters())]
    for name, a, b in zip(names, actual, expected, strict=True):
        assert b.abs().max() > 0, f"backprop gradient of {name} is zero; the comparison would be vacuous"
        error = (a - b).abs().max().item() / (1.0 + b.abs().max().item())
        assert error <= 1e-8, f"adjoint gradient of {name} differs from backprop by {error:.3e}"


def test_adjoint_forward_uses_the_adjoint_function_and_matches_plain_forward() -> None:
    adjoint = make_layer("midpoint-adjoint", 2)
    plain = make_layer("midpoint", 2)
    x = data(2)
    y = adjoint(x)[0]
    assert y.grad_fn is not None and "MidpointAdjoint" in type(y.grad_fn).__name__
    torch.testing.assert_close(y, plain(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["midpoint", "midpoint-adjoint"])
def test_convergence_error_with_too_few_iterations(kind: str) -> None:
    layer = make_layer(kind, 2, max_iter=1, tol=1e-14)
    with pytest.raises(ConvergenceError, match="ImplicitMidpointFlow.forward.*did not converge") as info:
        layer(data(2))
    assert info.value.residual > 1e-14 and info.value.step == 0 and info.value.iterations == 1
    with pytest.raises(ConvergenceError, match="ImplicitMidpointFlow.inverse"):
        layer.inverse(data(2))
