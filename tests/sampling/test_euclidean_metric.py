"""``canonflow/sampling/euclidean_metric.py``: which metric ``"auto"`` adapts; the default on a correlated target."""

from __future__ import annotations

import pytest
import torch
from randomness import gen

from canonflow.sampling import ess_bulk, hmc, initial_points
from canonflow.sampling.euclidean_metric import AUTO_DENSE_MAX_DIM, dense_metric
from sampling.common import assert_moments


def test_auto_metric_is_dense_in_small_dimensions_only():
    assert dense_metric("auto", 1, "hmc") and dense_metric("auto", AUTO_DENSE_MAX_DIM, "hmc")
    assert not dense_metric("auto", AUTO_DENSE_MAX_DIM + 1, "hmc")
    assert dense_metric("dense", 1000, "hmc") and not dense_metric("diag", 2, "hmc")
    with pytest.raises(ValueError, match="hmc: unknown metric 'full'"):
        dense_metric("full", 2, "hmc")


@pytest.mark.statistical
def test_default_hmc_samples_a_raw_scale_regression_posterior():
    # earnings-like: correlation −0.999, scales 1 and 30, centred far from the origin. With a diagonal metric HMC's
    # 10-step trajectories crawl along the ridge (bulk ESS 11–14 of 800 draws, R̂ 1.6–2.2 over four seeds); the
    # default ("auto": dense for d ≤ 50) undoes the correlation (ESS 470–670), so ESS > 100 separates them widely
    rho, scales = -0.999, torch.tensor([1.0, 30.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64) * scales[:, None] * scales[None, :]
    precision, mean = torch.linalg.inv(cov), torch.tensor([26.0, -300.0], dtype=torch.float64)

    def potential(q: torch.Tensor) -> torch.Tensor:
        c = q - mean
        return 0.5 * ((c @ precision) * c).sum(-1)

    x0 = initial_points(potential, 2, 8, generator=gen(40))
    result = hmc(potential, x0, 100, warmup=200, generator=gen(41))
    assert result.inverse_mass.shape == (2, 2)
    assert min(ess_bulk(result.samples.numpy())) > 100
    assert_moments(result.samples, mean, torch.diagonal(cov))
    assert result.num_divergent == 0
