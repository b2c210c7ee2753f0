"""``canonflow/sampling/hmc.py``: invariance, detailed balance, divergences, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import Z_SCORE, gen

from canonflow.sampling import hmc
from sampling.common import assert_moments, normal_potential


@pytest.mark.statistical
def test_hmc_leaves_standard_normal_invariant():
    x0 = torch.randn(32, 3, generator=gen(0), dtype=torch.float64)
    result = hmc(normal_potential, x0, 150, warmup=100, num_steps=4, generator=gen(1))
    assert result.samples.shape == (150, 32, 3)
    assert_moments(result.samples, torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    assert result.num_divergent == 0
    assert result.gradient_evaluations == 150 * 32 * 4  # L gradients per transition, cached end points


def gumbel_potential(q: torch.Tensor) -> torch.Tensor:
    return (q + torch.exp(-q)).sum(-1)


@pytest.mark.statistical
def test_hmc_detailed_balance_on_a_skewed_1d_target():
    # Started at exact draws of the Gumbel density e^{-q - e^{-q}}, one reversible transition leaves the pair
    # (X0, X1) exchangeable: E[X0 X1²] = E[X0² X1], and X1 has the target's law.
    chains = 20000
    x0 = -torch.log(-torch.log(torch.rand(chains, 1, generator=gen(5), dtype=torch.float64)))
    result = hmc(gumbel_potential, x0, 1, warmup=0, step_size=0.9, num_steps=3, jitter=0.0, generator=gen(6))
    x1 = result.samples[0]
    a, b = (x0 * x1**2).flatten(), (x0**2 * x1).flatten()
    diff = a - b
    assert abs(diff.mean()) < Z_SCORE * diff.std() / math.sqrt(chains)
    assert 0.3 < result.acceptance_rate < 0.99
    euler = 0.5772156649015329
    assert abs(x1.mean() - euler) < Z_SCORE * (math.pi / math.sqrt(6)) / math.sqrt(chains)


@pytest.mark.statistical
def test_nan_potential_is_reported_as_divergent():
    def walled(q: torch.Tensor) -> torch.Tensor:
        u = 0.5 * q.pow(2).sum(-1)
        return torch.where(q[:, 0] > 1.0, torch.full_like(u, math.nan), u)

    x0 = torch.full((8, 1), 0.5, dtype=torch.float64)
    result = hmc(walled, x0, 30, warmup=0, step_size=0.5, num_steps=5, generator=gen(9))
    assert result.num_divergent > 0
    assert not result.accepted[result.divergent].any()
    assert torch.isfinite(result.samples).all() and (result.samples <= 1.0).all()


def test_hmc_bad_input():
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="not finite at x0"):
        hmc(lambda q: torch.full(q.shape[:1], math.inf, dtype=q.dtype), x0, 10)
    with pytest.raises(ValueError, match="num_samples"):
        hmc(normal_potential, x0, 0)
    with pytest.raises(ValueError, match=r"shape \(chains, d\)"):
        hmc(normal_potential, torch.zeros(4, dtype=torch.float64), 10)
    with pytest.raises(ValueError, match=r"must map"):
        hmc(lambda q: q.pow(2), x0, 10)
    with pytest.raises(ValueError, match="step_size must be given"):
        hmc(normal_potential, x0, 10, warmup=0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        hmc(normal_potential, torch.full((2, 2), math.nan, dtype=torch.float64), 10)
