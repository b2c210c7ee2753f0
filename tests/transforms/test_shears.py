"""``MomentumShear`` and ``PositionShear``: the layer contract, the stated maps, and the field they need."""

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

from canonflow.nn import MLP, GradientField, IrrotationalMLP
from canonflow.transforms import MomentumShear, PositionShear

F64 = torch.float64

FACTORIES = {
    "momentum_shear_irrotational": lambda n: MomentumShear(IrrotationalMLP(n, 16)),
    "momentum_shear_autograd": lambda n: MomentumShear(GradientField(MLP(n, 1, 16, 2, output_bias=False), n)),
    "position_shear_irrotational": lambda n: PositionShear(IrrotationalMLP(n, 16, activation="softplus")),
    "position_shear_autograd": lambda n: PositionShear(
        GradientField(MLP(n, 1, 16, 2, activation="silu", output_bias=False), n)
    ),
}
BAD_INPUT_LAYERS = {
    "MomentumShear": lambda: MomentumShear(IrrotationalMLP(2, 4)),
    "PositionShear": lambda: PositionShear(IrrotationalMLP(2, 4)),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(kind: str, n: int, check: str) -> None:
    run_check(check, lambda: make_layer(FACTORIES[kind], n), n)


@pytest.mark.parametrize("name", sorted(BAD_INPUT_LAYERS))
@pytest.mark.parametrize("case", sorted({**BAD_INPUTS, **MISMATCHED_INPUTS}))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_bad_input_is_refused_with_a_clear_message(name: str, case: str, direction: str) -> None:
    check_bad_input(BAD_INPUT_LAYERS[name](), name, case, direction)


def quartic() -> GradientField:
    """``∇F`` for ``F(y) = Σ y⁴ / 4``: the field ``y -> y³``."""
    return GradientField(lambda y: (y**4).sum(-1) / 4, n=3)


def test_momentum_shear_is_the_stated_map() -> None:
    x = torch.randn(5, 6, dtype=F64)
    q, p = x[:, :3], x[:, 3:]
    layer = MomentumShear(quartic())
    torch.testing.assert_close(layer(x)[0], torch.cat([q, p - q**3], 1))
    torch.testing.assert_close(layer.inverse(x)[0], torch.cat([q, p + q**3], 1))


def test_position_shear_is_the_stated_map() -> None:
    x = torch.randn(5, 6, dtype=F64)
    q, p = x[:, :3], x[:, 3:]
    layer = PositionShear(quartic())
    torch.testing.assert_close(layer(x)[0], torch.cat([q + p**3, p], 1))
    torch.testing.assert_close(layer.inverse(x)[0], torch.cat([q - p**3, p], 1))


@pytest.mark.parametrize("shear", [MomentumShear, PositionShear])
def test_a_shear_needs_to_know_n(shear: type) -> None:
    with pytest.raises(ValueError, match=f"{shear.__name__}: cannot infer n"):
        shear(torch.nn.Identity())
    assert shear(torch.nn.Identity(), n=3).n == 3
    assert shear(IrrotationalMLP(4, 8)).n == 4
