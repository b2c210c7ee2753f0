"""``SymplecticComposite``: the layer contract, one validation at the entry, the layers it accepts."""

from __future__ import annotations

import pytest
import torch
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
from nflows.transforms import LULinear

from canonflow.nn import IrrotationalMLP
from canonflow.transforms import (
    Exchange,
    LinearSymplectic,
    MatrixExpSymplectic,
    MomentumShear,
    PositionShear,
    SymplecticComposite,
    SymplecticScaling,
    ZeroCenter,
)

F64 = torch.float64


def mixed(n: int) -> SymplecticComposite:
    """One layer of each elementary kind, in an order no builder uses."""
    return SymplecticComposite(
        [
            ZeroCenter(n),
            MomentumShear(IrrotationalMLP(n, 8)),
            Exchange(n),
            SymplecticScaling(n),
            LinearSymplectic(n, full=True),
            PositionShear(IrrotationalMLP(n, 8, activation="silu")),
            MatrixExpSymplectic(n),
        ]
    )


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(n: int, check: str) -> None:
    run_check(check, lambda: make_layer(mixed, n), n)


@pytest.mark.parametrize("case", sorted({**BAD_INPUTS, **MISMATCHED_INPUTS}))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_bad_input_is_refused_once_with_the_composites_name(case: str, direction: str) -> None:
    check_bad_input(mixed(2).eval(), "SymplecticComposite", case, direction)


def test_is_the_composition_of_its_layers_in_order() -> None:
    layer = make_layer(mixed, 2)
    assert [type(inner).__name__ for inner in layer.layers] == [
        "ZeroCenter",
        "MomentumShear",
        "Exchange",
        "SymplecticScaling",
        "LinearSymplectic",
        "PositionShear",
        "MatrixExpSymplectic",
    ]
    x = torch.randn(6, 4, dtype=F64)
    y = x
    for inner in layer.layers:
        y = inner(y)[0]
    torch.testing.assert_close(layer(x)[0], y, rtol=0, atol=0)
    for inner in reversed(layer.layers):
        y = inner.inverse(y)[0]
    torch.testing.assert_close(layer.inverse(layer(x)[0])[0], y, rtol=0, atol=0)


def test_logabsdet_is_zeros_of_shape_batch() -> None:
    layer = make_layer(mixed, 2)
    x = torch.randn(7, 4, dtype=F64)
    for direction in (layer.forward, layer.inverse):
        _, logabsdet = direction(x)
        assert logabsdet.shape == (7,) and logabsdet.dtype == F64
        assert torch.equal(logabsdet, torch.zeros(7, dtype=F64))


def test_inner_layers_are_not_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = make_layer(mixed, 2)

    def refuse(self, x: torch.Tensor, direction: str) -> None:
        raise AssertionError(f"{type(self).__name__}.{direction} validated its input inside the composite")

    for inner in layer.layers:
        monkeypatch.setattr(type(inner), "_check", refuse)
    x = torch.randn(3, 4, dtype=F64)
    layer.inverse(layer(x)[0])


def test_refuses_an_empty_list_mixed_n_and_layers_that_are_not_canonical() -> None:
    with pytest.raises(ValueError, match="SymplecticComposite: expected at least one layer"):
        SymplecticComposite([])
    with pytest.raises(ValueError, match="same n"):
        SymplecticComposite([Exchange(1), Exchange(2)])
    with pytest.raises(TypeError, match="SymplecticComposite: expected SymplecticTransform"):
        SymplecticComposite([Exchange(1), LULinear(2)])
