"""Every core canonical layer meets the contract of ``layer_contract`` at several dimensions."""

from __future__ import annotations

import pytest
from layer_contract import ALL_CHECKS, randomize_, run_check
from nflows.transforms import CompositeTransform, LULinear, PiecewiseRationalQuadraticCDF
from randomness import gen, manual_seed

from canonflow import canonical_flow
from canonflow.nn import MLP, GradientField, IrrotationalMLP
from canonflow.transforms import (
    Exchange,
    LinearSymplectic,
    MatrixExpSymplectic,
    MomentumShear,
    PointTransform,
    PositionShear,
    SymplecticScaling,
    ZeroCenter,
)


def _zero_center(n: int) -> ZeroCenter:
    layer = ZeroCenter(n)
    layer.running_mean.normal_(generator=gen(5))
    return layer


def _point(n: int) -> PointTransform:
    q_map = CompositeTransform(
        [LULinear(n, identity_init=False), PiecewiseRationalQuadraticCDF(n, tails="linear", tail_bound=5.0)]
    )
    return PointTransform(q_map, n)


FACTORIES = {
    "momentum_shear_irrotational": lambda n: MomentumShear(IrrotationalMLP(n, 16)),
    "momentum_shear_autograd": lambda n: MomentumShear(GradientField(MLP(n, 1, 16, 2, output_bias=False), n)),
    "position_shear_irrotational": lambda n: PositionShear(IrrotationalMLP(n, 16, activation="softplus")),
    "position_shear_autograd": lambda n: PositionShear(
        GradientField(MLP(n, 1, 16, 2, activation="silu", output_bias=False), n)
    ),
    "linear_diagonal": lambda n: LinearSymplectic(n, householder=min(3, n - 1)),
    "linear_full": lambda n: LinearSymplectic(n, householder=min(2, n - 1), full=True),
    "linear_many_reflections": lambda n: LinearSymplectic(n, householder=6),
    "matrix_exp": MatrixExpSymplectic,
    "zero_center": _zero_center,
    "exchange": Exchange,
    "scaling": SymplecticScaling,
    "point_transform": _point,
    "canonical_flow": lambda n: canonical_flow(n, blocks=2, hidden=8),
    "canonical_flow_full": lambda n: canonical_flow(n, blocks=2, hidden=8, full_linear=True, activation="softplus"),
}
NO_PARAMETERS = {"exchange"}


def make_layer(kind: str, n: int, seed: int = 0):
    manual_seed(seed)
    return randomize_(FACTORIES[kind](n).double(), seed=seed).eval()


@pytest.mark.parametrize("n", [1, 2, 3, 8])
@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(kind: str, n: int, check: str) -> None:
    if check == "gradients" and kind in NO_PARAMETERS:
        assert not list(make_layer(kind, n).parameters())
        return
    run_check(check, lambda: make_layer(kind, n), n)
