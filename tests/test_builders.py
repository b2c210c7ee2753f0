"""``canonical_flow``: the standard stack meets the layer contract, has the stated structure, checks its options."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_contract import ALL_CHECKS, SIZES, make_layer, randomize_, run_check
from randomness import manual_seed

from canonflow import canonical_flow
from canonflow.testing import assert_invertible, assert_symplectic

FACTORIES = {
    "canonical_flow": lambda n: canonical_flow(n, blocks=2, hidden=8),
    "canonical_flow_full": lambda n: canonical_flow(n, blocks=2, hidden=8, full_linear=True, activation="softplus"),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(kind: str, n: int, check: str) -> None:
    run_check(check, lambda: make_layer(FACTORIES[kind], n), n)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), batch=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_property_canonical_flow_is_exact(n: int, batch: int, seed: int) -> None:
    manual_seed(seed)
    flow = randomize_(canonical_flow(n, blocks=2, hidden=8, full_linear=seed % 2 == 0).double(), seed=seed).eval()
    x = torch.randn(batch, 2 * n, dtype=torch.float64)
    assert_invertible(flow, x, atol=1e-10)
    assert_symplectic(flow, x, atol=1e-10)


def test_structure() -> None:
    flow = canonical_flow(3, blocks=2, hidden=8, householder=1, full_linear=True)
    kinds = [type(layer).__name__ for layer in flow.layers]
    assert kinds == ["ZeroCenter"] + ["LinearSymplectic", "MomentumShear", "PositionShear"] * 2
    assert all(layer.householder == 1 and layer.full for layer in flow.layers[1::3])
    assert flow.layers[2].field.w1.shape == (8, 3)
    assert type(canonical_flow(1, blocks=1, zero_center=False).layers[0]).__name__ == "LinearSymplectic"


@pytest.mark.parametrize("options", [{"n": 0}, {"n": 2, "hidden": 0}, {"n": 2, "blocks": 0}])
def test_bad_options_are_refused_by_name(options: dict) -> None:
    with pytest.raises(ValueError, match="canonical_flow: expected"):
        canonical_flow(**options)
