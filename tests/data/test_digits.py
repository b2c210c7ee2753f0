"""Tests of :mod:`canonflow.data.digits`: the logit preprocessing of the digits pipeline."""

from __future__ import annotations

import torch
from randomness import gen

from canonflow.data import LogitPreprocessing


def test_logit_preprocessing_log_jacobian() -> None:
    pixels = torch.randint(0, 17, (5, 64), generator=gen(0)).double()
    prep = LogitPreprocessing(torch.randint(0, 17, (50, 64), generator=gen(1)).double(), seed=2)
    v = prep.dequantize(pixels, gen(3)).requires_grad_(True)
    y, log_jacobian = prep(v)
    derivative = torch.autograd.grad(y.sum(), v)[0]  # y is elementwise in v: dy_i/dv_i
    assert torch.allclose(log_jacobian, derivative.abs().log().sum(-1), atol=1e-10)
