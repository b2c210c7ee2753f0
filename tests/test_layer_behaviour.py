"""Behaviour of the core layers beyond the shared contract: known maps, modes, and the checks failing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_contract import randomize_
from nflows.transforms import CompositeTransform, LULinear
from randomness import manual_seed

from canonflow import canonical_flow
from canonflow.nn import GradientField, IrrotationalMLP
from canonflow.phase_space import symplectic_form
from canonflow.testing import assert_invertible, assert_symplectic, jacobian
from canonflow.transforms import (
    Exchange,
    LinearSymplectic,
    MatrixExpSymplectic,
    MomentumShear,
    PointTransform,
    SymplecticScaling,
    ZeroCenter,
)

F64 = torch.float64


class RotationalField(torch.nn.Module):
    """``μ(q) = (-q_2, q_1)``: not a gradient field, so the shear it drives is not canonical."""

    n = 2

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return torch.stack([-q[:, 1], q[:, 0]], dim=1)


def test_symplectic_check_fails_for_a_non_gradient_shear() -> None:
    with pytest.raises(AssertionError, match="not symplectic"):
        assert_symplectic(MomentumShear(RotationalField()), torch.randn(4, 4, dtype=F64))


def test_invertibility_check_fails_for_a_wrong_inverse() -> None:
    class Broken(Exchange):
        def _inverse(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(AssertionError, match="inverse"):
        assert_invertible(Broken(2), torch.randn(3, 4, dtype=F64))


def test_irrotational_mlp_has_a_symmetric_jacobian() -> None:
    field = randomize_(IrrotationalMLP(5, 32).double())
    q = torch.randn(3, 5, dtype=F64)
    jac = torch.stack([torch.autograd.functional.jacobian(field, q[i : i + 1])[0, :, 0] for i in range(3)])
    torch.testing.assert_close(jac, jac.transpose(1, 2), rtol=0, atol=1e-13)
    assert jac.abs().max() > 1e-3


def test_gradient_field_equals_analytic_gradient() -> None:
    field = GradientField(lambda q: (q**4).sum(-1) / 4, n=3)
    q = torch.randn(6, 3, dtype=F64)
    torch.testing.assert_close(field(q), q**3)
    with torch.no_grad():
        torch.testing.assert_close(field(q), q**3)


def test_gradient_field_refuses_inference_mode_and_says_why() -> None:
    layer = MomentumShear(GradientField(lambda q: (q**2).sum(-1), n=1))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference mode"):
        layer(torch.randn(2, 2))


def test_gradient_field_rejects_a_non_scalar_potential() -> None:
    with pytest.raises(ValueError, match="GradientField"):
        GradientField(lambda q: q, n=2)(torch.randn(3, 2))


def test_linear_symplectic_matrix_is_symplectic_and_matches_jacobian() -> None:
    for full in (False, True):
        layer = randomize_(LinearSymplectic(4, householder=6, full=full).double())
        matrix = layer.matrix()
        omega = symplectic_form(4, dtype=F64)
        torch.testing.assert_close(matrix.T @ omega @ matrix, omega, rtol=0, atol=1e-12)
        x = torch.randn(2, 8, dtype=F64)
        torch.testing.assert_close(jacobian(layer, x)[0], matrix, rtol=0, atol=1e-12)
        torch.testing.assert_close(layer(x)[0], x @ matrix.T)


def test_householder_part_is_orthogonal() -> None:
    layer = LinearSymplectic(3, householder=3).double()
    torch.nn.init.normal_(layer.phase)
    matrix = layer.matrix()
    torch.testing.assert_close(matrix.T @ matrix, torch.eye(6, dtype=F64), rtol=0, atol=1e-12)


def test_matrix_exp_and_nak_represent_the_same_group() -> None:
    target = randomize_(MatrixExpSymplectic(2).double()).matrix()
    omega = symplectic_form(2, dtype=F64)
    torch.testing.assert_close(target.T @ omega @ target, omega, rtol=0, atol=1e-12)
    assert torch.linalg.det(target).item() == pytest.approx(1.0, abs=1e-12)


def test_exchange_and_scaling_are_the_stated_maps() -> None:
    x = torch.randn(4, 6, dtype=F64)
    q, p = x[:, :3], x[:, 3:]
    torch.testing.assert_close(Exchange(3)(x)[0], torch.cat([p, -q], 1))
    scaling = SymplecticScaling(3).double()
    with torch.no_grad():
        scaling.log_scale.copy_(torch.tensor([0.1, -0.2, 0.3]))
    s = scaling.log_scale.exp()
    torch.testing.assert_close(scaling(x)[0], torch.cat([q * s, p / s], 1))


def test_point_transform_of_a_linear_map_transforms_momenta_contragrediently() -> None:
    manual_seed(0)
    lu = LULinear(3, identity_init=False).double()
    layer = PointTransform(lu, 3)
    x = torch.randn(5, 6, dtype=F64)
    matrix = torch.autograd.functional.jacobian(lambda q: lu(q)[0], x[:1, :3])[0, :, 0]
    y = layer(x)[0]
    torch.testing.assert_close(y[:, :3], lu(x[:, :3])[0])
    torch.testing.assert_close(y[:, 3:], x[:, 3:] @ torch.linalg.inv(matrix))


def test_point_transform_needs_an_nflows_transform() -> None:
    with pytest.raises(TypeError, match="PointTransform"):
        PointTransform(torch.nn.Linear(2, 2), 2)


def test_zero_center_training_uses_batch_mean_and_updates_running_mean() -> None:
    layer = ZeroCenter(2, momentum=0.25).double()
    x = torch.randn(64, 4, dtype=F64) + 3.0
    y, _ = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(4, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.running_mean, 0.25 * x.mean(0))
    layer.eval()
    torch.testing.assert_close(layer(x)[0], x - 0.25 * x.mean(0))
    assert_invertible(layer, x, atol=1e-12)


def test_zero_center_needs_two_samples_in_training() -> None:
    with pytest.raises(ValueError, match="ZeroCenter"):
        ZeroCenter(1)(torch.randn(1, 2))
    with pytest.raises(ValueError, match="momentum"):
        ZeroCenter(1, momentum=0.0)


def test_zero_center_running_mean_is_saved() -> None:
    layer = ZeroCenter(2)
    layer(torch.randn(8, 4) + 1)
    assert "running_mean" in layer.state_dict()
    assert layer.state_dict()["running_mean"].abs().sum() > 0


def test_canonical_flow_structure() -> None:
    flow = canonical_flow(3, blocks=2, hidden=8)
    kinds = [type(layer).__name__ for layer in flow._transforms]
    assert kinds == ["ZeroCenter"] + ["LinearSymplectic", "MomentumShear", "PositionShear"] * 2
    assert [type(layer).__name__ for layer in canonical_flow(1, blocks=1, zero_center=False)._transforms][0] == (
        "LinearSymplectic"
    )


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), batch=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_property_canonical_flow_is_exact(n: int, batch: int, seed: int) -> None:
    manual_seed(seed)
    flow = randomize_(canonical_flow(n, blocks=2, hidden=8, full_linear=seed % 2 == 0).double(), seed=seed).eval()
    x = torch.randn(batch, 2 * n, dtype=F64)
    assert_invertible(flow, x, atol=1e-10)
    assert_symplectic(flow, x, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), batch=st.integers(1, 9), k=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_property_point_and_linear_layers_are_exact(n: int, batch: int, k: int, seed: int) -> None:
    manual_seed(seed)
    x = torch.randn(batch, 2 * n, dtype=F64)
    for layer in (
        randomize_(LinearSymplectic(n, householder=k).double(), seed=seed),
        PointTransform(CompositeTransform([LULinear(n, identity_init=False)]), n).double(),
    ):
        assert_invertible(layer, x, atol=1e-10)
        assert_symplectic(layer, x, atol=1e-10)


def test_householder_part_equals_the_explicit_product_of_reflections() -> None:
    layer = randomize_(LinearSymplectic(4, householder=5).double())
    unitary = torch.eye(4, dtype=torch.complex128)
    for a, b in zip(layer.reflector_real, layer.reflector_imag, strict=True):
        v = torch.complex(a, b).detach().unsqueeze(1)
        unitary = unitary @ (torch.eye(4, dtype=torch.complex128) - 2 * (v @ v.conj().T) / (v.conj().T @ v))
    unitary = torch.diag(torch.polar(torch.ones(4, dtype=F64), layer.phase.detach())) @ unitary
    x = torch.randn(6, 8, dtype=F64)
    z = torch.complex(x[:, :4], x[:, 4:]) @ unitary.T
    scale = layer.log_scale.detach().exp()
    q, p = z.real * scale, z.imag / scale
    expected = torch.cat([q, p + q * layer.shear.detach()], 1)
    torch.testing.assert_close(layer(x)[0], expected, rtol=0, atol=1e-12)


def test_composite_validates_once_and_refuses_mixed_layers() -> None:
    from canonflow.transforms import SymplecticComposite

    flow = canonical_flow(2, blocks=1)
    with pytest.raises(ValueError, match="SymplecticComposite.forward"):
        flow(torch.randn(3, 5))
    with pytest.raises(ValueError, match="SymplecticComposite.inverse"):
        flow.inverse(torch.tensor([[float("nan"), 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="same n"):
        SymplecticComposite([Exchange(1), Exchange(2)])
    with pytest.raises(TypeError, match="SymplecticTransform"):
        SymplecticComposite([Exchange(1), LULinear(2)])
