"""``Exchange`` and ``SymplecticScaling``: the layer contract and the stated maps."""

from __future__ import annotations

import pytest
import torch
from layer_contract import (
    ALL_CHECKS,
    BAD_INPUTS,
    DIRECTIONS,
    MISMATCHED_INPUTS,
    SIZES,
    STATELESS_CHECKS,
    check_bad_input,
    make_layer,
    run_check,
)

from canonflow.transforms import Exchange, SymplecticScaling

F64 = torch.float64


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_scaling_meets_the_layer_contract(n: int, check: str) -> None:
    run_check(check, lambda: make_layer(SymplecticScaling, n), n)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("check", STATELESS_CHECKS)
def test_exchange_meets_the_layer_contract(n: int, check: str) -> None:
    run_check(check, lambda: make_layer(Exchange, n), n)


@pytest.mark.parametrize("case", sorted({**BAD_INPUTS, **MISMATCHED_INPUTS}))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_scaling_refuses_bad_input_with_a_clear_message(case: str, direction: str) -> None:
    check_bad_input(SymplecticScaling(2), "SymplecticScaling", case, direction)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_exchange_refuses_bad_input_with_a_clear_message(case: str, direction: str) -> None:
    check_bad_input(Exchange(2), "Exchange", case, direction)


def test_exchange_has_no_state_and_takes_any_floating_dtype() -> None:
    layer = Exchange(2)
    assert not list(layer.parameters()) and not layer.state_dict()
    for dtype in (torch.float32, torch.float64):
        for direction in (layer.forward, layer.inverse):
            assert direction(torch.randn(3, 4, dtype=dtype))[0].dtype == dtype


def test_exchange_and_scaling_are_the_stated_maps() -> None:
    x = torch.randn(4, 6, dtype=F64)
    q, p = x[:, :3], x[:, 3:]
    torch.testing.assert_close(Exchange(3)(x)[0], torch.cat([p, -q], 1))
    torch.testing.assert_close(Exchange(3).inverse(x)[0], torch.cat([-p, q], 1))
    scaling = SymplecticScaling(3).double()
    with torch.no_grad():
        scaling.log_scale.copy_(torch.tensor([0.1, -0.2, 0.3]))
    s = scaling.log_scale.exp()
    torch.testing.assert_close(scaling(x)[0], torch.cat([q * s, p / s], 1))
    torch.testing.assert_close(scaling.inverse(x)[0], torch.cat([q / s, p * s], 1))


@pytest.mark.parametrize("build", [lambda: Exchange(2.0), lambda: SymplecticScaling(0)])
def test_bad_constructor_arguments_are_refused_by_name(build) -> None:
    with pytest.raises((ValueError, TypeError), match="(Exchange|SymplecticScaling): expected n"):
        build()
