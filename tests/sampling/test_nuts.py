"""``canonflow/sampling/nuts.py``: detailed balance, a dense metric on a correlated Gaussian, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import Z_SCORE, gen

from canonflow.sampling import initial_points, nuts
from sampling.common import assert_moments, normal_potential


def gumbel_potential(q: torch.Tensor) -> torch.Tensor:
    return (q + torch.exp(-q)).sum(-1)


@pytest.mark.statistical
def test_nuts_detailed_balance_on_a_skewed_1d_target():
    # Started at exact draws of the Gumbel density, one reversible NUTS transition leaves (X0, X1) exchangeable:
    # E[X0 X1²] = E[X0² X1], and X1 has the target's law (mean = Euler's constant).
    chains = 8000
    x0 = -torch.log(-torch.log(torch.rand(chains, 1, generator=gen(21), dtype=torch.float64)))
    result = nuts(gumbel_potential, x0, 1, warmup=0, step_size=0.7, generator=gen(22))
    x1 = result.samples[0]
    diff = ((x0 * x1**2) - (x0**2 * x1)).flatten()
    assert abs(diff.mean()) < Z_SCORE * diff.std() / math.sqrt(chains)
    euler = 0.5772156649015329
    assert abs(x1.mean() - euler) < Z_SCORE * (math.pi / math.sqrt(6)) / math.sqrt(chains)
    assert result.extra["tree_depth"].float().mean() > 1  # it did build trees, not single steps
    assert result.gradient_evaluations == int(result.extra["n_leapfrog"].sum())


@pytest.mark.statistical
def test_nuts_with_dense_metric_samples_a_correlated_gaussian():
    # raw-scale regression-like posterior: correlation −0.99, scales 1 and 3, centred away from the origin
    rho, scales = -0.99, torch.tensor([1.0, 3.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64) * scales[:, None] * scales[None, :]
    precision, mean = torch.linalg.inv(cov), torch.tensor([26.0, -3.0], dtype=torch.float64)

    def potential(q: torch.Tensor) -> torch.Tensor:
        c = q - mean
        return 0.5 * ((c @ precision) * c).sum(-1)

    x0 = initial_points(potential, 2, 8, generator=gen(23))
    result = nuts(potential, x0, 150, warmup=200, metric="dense", generator=gen(24))
    assert result.inverse_mass.shape == (2, 2)
    assert_moments(result.samples, mean, torch.diagonal(cov))
    assert result.extra["tree_depth"].float().mean() < 3.5  # the dense metric has decorrelated it
    assert result.num_divergent == 0


def test_nuts_bad_input():
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="nuts: expected max_depth"):
        nuts(normal_potential, x0, 10, max_depth=0)
    with pytest.raises(ValueError, match="nuts: unknown metric"):
        nuts(normal_potential, x0, 10, metric="full")
    with pytest.raises(ValueError, match="nuts: without warm-up"):
        nuts(normal_potential, x0, 10, warmup=0)
    with pytest.raises(ValueError, match=r"nuts: expected an inverse_mass of shape \(2,\) or \(2, 2\)"):
        nuts(normal_potential, x0, 10, inverse_mass=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="not positive definite"):
        nuts(normal_potential, x0, 10, inverse_mass=-torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="one per chain"):
        nuts(normal_potential, x0, 10, step_size=torch.ones(3, dtype=torch.float64))
