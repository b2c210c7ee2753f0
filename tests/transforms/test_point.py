"""``PointTransform``: the layer contract, the cotangent lift of a linear map, what it needs from ``f``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_contract import (
    ALL_CHECKS,
    BAD_INPUTS,
    DIRECTIONS,
    MISMATCHED_INPUTS,
    SIZES,
    check_bad_input,
    make_layer,
    run_check,
)
from nflows.transforms import CompositeTransform, LULinear, PiecewiseRationalQuadraticCDF
from randomness import manual_seed

from canonflow.testing import assert_invertible, assert_symplectic
from canonflow.transforms import PointTransform

F64 = torch.float64


def point_transform(n: int) -> PointTransform:
    """The lift of a nonlinear ``f``: an LU-linear map followed by an elementwise rational-quadratic spline."""
    q_map = CompositeTransform(
        [LULinear(n, identity_init=False), PiecewiseRationalQuadraticCDF(n, tails="linear", tail_bound=5.0)]
    )
    return PointTransform(q_map, n)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(n: int, check: str) -> None:
    run_check(check, lambda: make_layer(point_transform, n), n)


@pytest.mark.parametrize("case", sorted({**BAD_INPUTS, **MISMATCHED_INPUTS}))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_bad_input_is_refused_with_a_clear_message(case: str, direction: str) -> None:
    check_bad_input(point_transform(2), "PointTransform", case, direction)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), batch=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_property_lift_of_a_linear_map_is_exact(n: int, batch: int, seed: int) -> None:
    manual_seed(seed)
    x = torch.randn(batch, 2 * n, dtype=F64)
    layer = PointTransform(CompositeTransform([LULinear(n, identity_init=False)]), n).double()
    assert_invertible(layer, x, atol=1e-10)
    assert_symplectic(layer, x, atol=1e-10)


def test_lift_of_a_linear_map_transforms_momenta_contragrediently() -> None:
    manual_seed(0)
    lu = LULinear(3, identity_init=False).double()
    layer = PointTransform(lu, 3)
    x = torch.randn(5, 6, dtype=F64)
    matrix = torch.autograd.functional.jacobian(lambda q: lu(q)[0], x[:1, :3])[0, :, 0]
    y = layer(x)[0]
    torch.testing.assert_close(y[:, :3], lu(x[:, :3])[0])
    torch.testing.assert_close(y[:, 3:], x[:, 3:] @ torch.linalg.inv(matrix))


def test_needs_an_nflows_transform() -> None:
    with pytest.raises(TypeError, match="PointTransform: expected an nflows Transform"):
        PointTransform(torch.nn.Linear(2, 2), 2)


def test_refuses_inference_mode_and_says_why() -> None:
    layer = point_transform(1)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="PointTransform.forward: cannot differentiate"):
        layer(torch.randn(2, 2))
