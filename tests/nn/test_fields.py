"""``GradientField`` and ``IrrotationalMLP``: gradient fields by autograd and by construction."""

from __future__ import annotations

import pytest
import torch
from layer_contract import randomize_

from canonflow.nn import ACTIVATIONS, MLP, GradientField, IrrotationalMLP

F64 = torch.float64


def field_jacobians(field: torch.nn.Module, q: torch.Tensor) -> torch.Tensor:
    """Per-sample Jacobians ``∂μ/∂q`` of shape ``(B, n, n)``."""
    return torch.stack([torch.autograd.functional.jacobian(field, q[i : i + 1])[0, :, 0] for i in range(len(q))])


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_irrotational_mlp_has_a_symmetric_jacobian(activation: str) -> None:
    field = randomize_(IrrotationalMLP(5, 32, activation=activation).double())
    jac = field_jacobians(field, torch.randn(3, 5, dtype=F64))
    torch.testing.assert_close(jac, jac.transpose(1, 2), rtol=0, atol=1e-13)
    assert jac.abs().max() > 1e-3


@pytest.mark.parametrize(
    "activation",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(
                name == "softplus",
                strict=True,
                reason="softplus(0) = log 2, so w₂ = b₃ = 0 leaves the constant field log 2 · W₁ᵀ1, not μ = 0",
            ),
        )
        for name in sorted(ACTIVATIONS)
    ],
)
def test_irrotational_mlp_starts_as_the_zero_field(activation: str) -> None:
    field = IrrotationalMLP(3, 16, activation=activation)
    torch.testing.assert_close(field(torch.randn(4, 3)), torch.zeros(4, 3), rtol=0, atol=0)


def test_gradient_field_equals_the_analytic_gradient() -> None:
    field = GradientField(lambda q: (q**4).sum(-1) / 4, n=3)
    q = torch.randn(6, 3, dtype=F64)
    torch.testing.assert_close(field(q), q**3)
    with torch.no_grad():
        torch.testing.assert_close(field(q), q**3)


def test_gradient_field_of_a_network_has_a_symmetric_jacobian_and_takes_a_b_by_1_potential() -> None:
    potential = randomize_(MLP(4, 1, 16, squeeze=False).double())
    field = GradientField(potential, n=4)
    q = torch.randn(3, 4, dtype=F64)
    jac = field_jacobians(field, q)
    torch.testing.assert_close(jac, jac.transpose(1, 2), rtol=0, atol=1e-13)
    assert jac.abs().max() > 1e-3 and field(q).shape == (3, 4)


def test_gradient_field_refuses_inference_mode_and_says_why() -> None:
    field = GradientField(lambda q: (q**2).sum(-1), n=1)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="GradientField: cannot differentiate inside"):
        field(torch.randn(2, 1))


def test_gradient_field_refuses_a_potential_that_is_not_scalar_or_not_callable() -> None:
    with pytest.raises(ValueError, match=r"GradientField: the potential must map \(B, n\) to \(B,\)"):
        GradientField(lambda q: q, n=2)(torch.randn(3, 2))
    with pytest.raises(TypeError, match="GradientField: expected a callable"):
        GradientField(3.0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: IrrotationalMLP(2, 0),
        lambda: IrrotationalMLP(0, 4),
        lambda: IrrotationalMLP(2, 4, activation="relu6"),
        lambda: GradientField(lambda q: q.sum(-1), n=0),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(build) -> None:
    with pytest.raises((ValueError, TypeError), match="(IrrotationalMLP|GradientField): "):
        build()
