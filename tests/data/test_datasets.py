"""Tests of :mod:`canonflow.data.datasets`: the ring2d data set and the banana density."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import gen

from canonflow.data import BANANA_NLL, banana, load_dataset
from canonflow.systems import Ring2D


def test_ring2d_dataset_sizes_seed_and_exact_nll() -> None:
    data = load_dataset("ring2d", 0, sizes=(300, 50, 400))
    assert (len(data.train), len(data.validation), len(data.test)) == (300, 50, 400)
    assert data.train.shape[1] == 2 and data.train.dtype == torch.float64 and not data.test_log_jacobian.any()
    again = load_dataset("ring2d", 0, sizes=(300, 50, 400))
    assert torch.equal(data.test, again.test) and not torch.equal(data.test, load_dataset("ring2d", 1).test[:400])
    system = Ring2D()  # the exact NLL: the normalized configurational density, by its normalizer
    q = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    grid = torch.cartesian_prod(q, q)
    mass = system.log_density_q(grid).exp().sum() * (q[1] - q[0]) ** 2
    assert math.log(mass) == pytest.approx(system.log_normalizer_q(), abs=1e-6)
    expected = float((-system.log_density_q(data.test) + system.log_normalizer_q()).mean())
    assert data.exact_test_nll == expected
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load_dataset("mnist", 0)


def test_banana_is_a_sheared_standard_normal() -> None:
    q, p = torch.randn(2, 500, generator=gen(3), dtype=torch.float64)
    assert torch.equal(banana(500, gen(3)), torch.stack([q, p + q**2 - 1.0], dim=1))
    assert BANANA_NLL == math.log(2 * math.pi) + 1.0  # E[|z|²/2] + log 2π: the shear has unit Jacobian
