"""``canonflow.testing``: the public checks pass for canonical layers and fail, saying why, for broken ones."""

from __future__ import annotations

import pytest
import torch
from nflows.transforms import LULinear

from canonflow.testing import (
    assert_invertible,
    assert_logabsdet_matches_jacobian,
    assert_symplectic,
    jacobian,
    round_trip_error,
    symplectic_defect,
)
from canonflow.transforms import Exchange, MomentumShear

F64 = torch.float64


class RotationalField(torch.nn.Module):
    """``μ(q) = (-q_2, q_1)``: not a gradient field, so the shear it drives is not canonical."""

    n = 2

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return torch.stack([-q[:, 1], q[:, 0]], dim=1)


class Dilation(Exchange):
    """``x -> 2x``: invertible, but not canonical, and its zero ``logabsdet`` is wrong."""

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return x / 2


def test_jacobian_and_defect_of_a_canonical_map() -> None:
    x = torch.randn(3, 4, dtype=F64)
    expected = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1], [-1, 0, 0, 0], [0, -1, 0, 0]], dtype=F64)
    torch.testing.assert_close(jacobian(Exchange(2), x), expected.expand(3, 4, 4), rtol=0, atol=0)
    torch.testing.assert_close(jacobian(Exchange(2), x, inverse=True), expected.T.expand(3, 4, 4), rtol=0, atol=0)
    assert symplectic_defect(Exchange(2), x).shape == (3,)
    assert symplectic_defect(Exchange(2), x).max() == 0


def test_symplectic_check_fails_for_a_non_gradient_shear() -> None:
    layer = MomentumShear(RotationalField())
    x = torch.randn(4, 4, dtype=F64)
    assert symplectic_defect(layer, x).min() > 0.5
    with pytest.raises(AssertionError, match="MomentumShear is not symplectic"):
        assert_symplectic(layer, x)
    with pytest.raises(AssertionError, match="Dilation is not symplectic"):
        assert_symplectic(Dilation(2), x, inverse=True)


def test_invertibility_check_fails_for_a_wrong_inverse() -> None:
    class Broken(Exchange):
        def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(AssertionError, match=r"Broken: max\|inverse\(forward\(x\)\) - x\|"):
        assert_invertible(Broken(2), torch.randn(3, 4, dtype=F64))
    assert_invertible(Dilation(2), torch.randn(3, 4, dtype=F64))


def test_round_trip_error_in_both_directions() -> None:
    class HalfInverse(Exchange):  # its inverse halves: both round trips are off by x/2
        def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
            return super().inverse_map(x) / 2

    x = torch.tensor([[1.0, -4.0, 2.0, 0.5]], dtype=F64)
    assert round_trip_error(HalfInverse(2), x) == 2.0 and round_trip_error(HalfInverse(2), x, inverse=True) == 2.0
    assert round_trip_error(Exchange(2), x) == 0.0 and round_trip_error(Dilation(2), x, inverse=True) == 0.0


def test_logabsdet_check_passes_for_a_correct_logabsdet_and_fails_for_a_wrong_one() -> None:
    x = torch.randn(3, 4, dtype=F64)
    assert_logabsdet_matches_jacobian(Exchange(2), x)
    assert_logabsdet_matches_jacobian(LULinear(4, identity_init=False).double(), x)
    with pytest.raises(AssertionError, match="Dilation: logabsdet"):
        assert_logabsdet_matches_jacobian(Dilation(2), x, inverse=True)
