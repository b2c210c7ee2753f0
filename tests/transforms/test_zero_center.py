"""``ZeroCenter``: the layer contract (eval mode), the batch mean in training, the running mean."""

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
from randomness import gen

from canonflow.testing import assert_invertible
from canonflow.transforms import ZeroCenter

F64 = torch.float64


def zero_center(n: int) -> ZeroCenter:
    """A ``ZeroCenter`` whose running mean is not zero."""
    layer = ZeroCenter(n)
    layer.running_mean.normal_(generator=gen(5))
    return layer


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("check", ALL_CHECKS)
def test_layer_contract(n: int, check: str) -> None:
    run_check(check, lambda: make_layer(zero_center, n), n)


@pytest.mark.parametrize("case", sorted({**BAD_INPUTS, **MISMATCHED_INPUTS}))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_bad_input_is_refused_with_a_clear_message(case: str, direction: str) -> None:
    check_bad_input(ZeroCenter(2).eval(), "ZeroCenter", case, direction)


def test_training_uses_the_batch_mean_and_updates_the_running_mean() -> None:
    layer = ZeroCenter(2, momentum=0.25).double()
    x = torch.randn(64, 4, dtype=F64) + 3.0
    y, _ = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(4, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.running_mean, 0.25 * x.mean(0))
    layer.eval()
    torch.testing.assert_close(layer(x)[0], x - 0.25 * x.mean(0))
    assert_invertible(layer, x, atol=1e-12)


def test_inverse_uses_the_running_mean_in_training_mode_too() -> None:
    layer = zero_center(2).double()
    with torch.no_grad():
        layer.shift.normal_(generator=gen(6))
    running = layer.running_mean.clone()
    z = torch.randn(8, 4, dtype=F64)
    torch.testing.assert_close(layer.inverse(z)[0], z + running - layer.shift.detach(), rtol=0, atol=0)
    assert layer.training and torch.equal(layer.running_mean, running)


def test_training_needs_two_samples_and_momentum_in_zero_one() -> None:
    with pytest.raises(ValueError, match="ZeroCenter.forward: training mode needs a batch of at least 2"):
        ZeroCenter(1)(torch.randn(1, 2))
    for momentum in (0.0, 1.5):
        with pytest.raises(ValueError, match="ZeroCenter: expected 0 < momentum <= 1"):
            ZeroCenter(1, momentum=momentum)
    with pytest.raises(ValueError, match="ZeroCenter: expected n to be a positive int"):
        ZeroCenter(-1)


def test_the_running_mean_is_saved_and_restored() -> None:
    layer = ZeroCenter(2)
    layer(torch.randn(8, 4) + 1)
    assert layer.running_mean.abs().sum() > 0
    fresh = ZeroCenter(2)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(3, 4)
    torch.testing.assert_close(fresh.eval()(x)[0], layer.eval()(x)[0], rtol=0, atol=0)
