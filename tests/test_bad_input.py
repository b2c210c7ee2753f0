"""Bad input gets a clear error naming the layer and what it expected; validation can be switched off."""

from __future__ import annotations

import pytest
import torch

import canonflow
from canonflow import canonical_flow
from canonflow.nn import MLP, IrrotationalMLP
from canonflow.transforms import (
    Exchange,
    LinearSymplectic,
    MatrixExpSymplectic,
    MomentumShear,
    PositionShear,
    SymplecticScaling,
    ZeroCenter,
)
from canonflow.validation import check_non_negative_int

LAYERS = {
    "MomentumShear": lambda: MomentumShear(IrrotationalMLP(2, 4)),
    "PositionShear": lambda: PositionShear(IrrotationalMLP(2, 4)),
    "LinearSymplectic": lambda: LinearSymplectic(2),
    "MatrixExpSymplectic": lambda: MatrixExpSymplectic(2),
    "ZeroCenter": lambda: ZeroCenter(2).eval(),
    "SymplecticScaling": lambda: SymplecticScaling(2),
    "Exchange": lambda: Exchange(2),
}

BAD_INPUTS = {
    "odd last dimension": (torch.randn(3, 5), ValueError, "even last dimension"),
    "wrong n": (torch.randn(3, 6), ValueError, "2n = 4"),
    "not a batch": (torch.randn(4), ValueError, r"shape \(B, 4\)"),
    "extra dimension": (torch.randn(2, 3, 4), ValueError, r"shape \(B, 4\)"),
    "NaN": (torch.tensor([[0.0, float("nan"), 0.0, 0.0]]), ValueError, "NaN or Inf"),
    "Inf": (torch.tensor([[0.0, 0.0, float("inf"), 0.0]]), ValueError, "NaN or Inf"),
    "integer dtype": (torch.ones(3, 4, dtype=torch.int64), TypeError, "floating-point"),
    "float64 into a float32 layer": (torch.randn(3, 4, dtype=torch.float64), TypeError, "dtype"),
    "another device": (torch.empty(3, 4, device="meta"), TypeError, "meta"),
}


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_bad_input_is_refused_with_a_clear_message(layer_name: str, case: str, direction: str) -> None:
    x, error, message = BAD_INPUTS[case]
    layer = LAYERS[layer_name]()
    if layer_name == "Exchange" and case in ("float64 into a float32 layer", "another device"):
        if case == "float64 into a float32 layer":
            getattr(layer, direction)(x)  # a layer without parameters takes any float dtype and device
        return
    with pytest.raises(error, match=message) as info:
        getattr(layer, direction)(x)
    assert f"{layer_name}.{direction}" in str(info.value)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: LinearSymplectic(0), "LinearSymplectic"),
        (lambda: ZeroCenter(-1), "ZeroCenter"),
        (lambda: Exchange(2.0), "Exchange"),
        (lambda: IrrotationalMLP(2, 0), "IrrotationalMLP"),
        (lambda: IrrotationalMLP(0, 4), "IrrotationalMLP"),
        (lambda: MLP(2, 1, hidden=-3), "MLP"),
        (lambda: canonical_flow(2, hidden=0), "canonical_flow"),
        (lambda: canonical_flow(0), "canonical_flow"),
        (lambda: LinearSymplectic(2, householder=-1), "LinearSymplectic"),
        (lambda: LinearSymplectic(2, householder=True), "LinearSymplectic"),
        (lambda: LinearSymplectic(2, householder=1.0), "LinearSymplectic"),
        (lambda: IrrotationalMLP(2, 4, activation="relu6"), "IrrotationalMLP"),
    ],
)
def test_bad_constructor_arguments(build, name: str) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        build()


@pytest.mark.parametrize("value", [-1, True, 2.0, "3", None])
def test_check_non_negative_int_refuses_what_is_not_an_int_at_least_zero(value: object) -> None:
    with pytest.raises(ValueError, match="Layer: expected width to be a non-negative int"):
        check_non_negative_int(value, "width", "Layer")


@pytest.mark.parametrize("value", [0, 1, 7])
def test_check_non_negative_int_returns_an_int_at_least_zero(value: int) -> None:
    assert check_non_negative_int(value, "width", "Layer") == value


def test_shear_needs_to_know_n() -> None:
    with pytest.raises(ValueError, match="MomentumShear"):
        MomentumShear(torch.nn.Identity())


def test_validation_can_be_switched_off() -> None:
    layer = LinearSymplectic(1)
    x = torch.tensor([[float("nan"), 0.0]])
    with canonflow.validation(False):
        assert not canonflow.validation_enabled()
        assert torch.isnan(layer(x)[0]).any()
    assert canonflow.validation_enabled()
    with pytest.raises(ValueError, match="NaN"):
        layer(x)
