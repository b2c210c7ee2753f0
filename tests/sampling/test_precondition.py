"""``canonflow/sampling/precondition.py``: the affine first stage is exact, saved, on by default; NeuTra-NUTS."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import Z_SCORE, fixed_manual_seed, gen

from canonflow import load
from canonflow.checkpoint import save_model
from canonflow.sampling import (
    FlowSampler,
    Preconditioner,
    fit_preconditioner,
    importance_resample,
    joint_energy,
    laplace,
    neutra_nuts,
    train_sampler,
)
from canonflow.training import TrainConfig
from sampling.common import assert_moments

MEAN = torch.tensor([26.0, -3.0, 0.5], dtype=torch.float64)
_CORRELATION = torch.tensor([[1.0, -0.99, 0.0], [-0.99, 1.0, 0.1], [0.0, 0.1, 1.0]], dtype=torch.float64)
_SCALES = torch.tensor([1.0, 4.0, 0.5], dtype=torch.float64)
COVARIANCE = _CORRELATION * _SCALES[:, None] * _SCALES[None, :]
PRECISION = torch.linalg.inv(COVARIANCE)


def raw_regression_potential(q: torch.Tensor) -> torch.Tensor:
    """A Gaussian posterior on a raw scale: far from the origin, scales 0.5–4, correlation −0.99."""
    centred = q - MEAN
    return 0.5 * ((centred @ PRECISION) * centred).sum(-1)


def test_laplace_preconditioned_flow_is_the_gaussian_exactly(tmp_path):
    fixed_manual_seed(0)
    model = FlowSampler.canonical(3, blocks=2, hidden=8).double()
    fit = laplace(raw_regression_potential, 3, generator=gen(31))
    torch.testing.assert_close(fit.mean, MEAN, rtol=0, atol=1e-5)  # L-BFGS's tolerance
    torch.testing.assert_close(fit.covariance, COVARIANCE)  # the Hessian is exact anywhere for a Gaussian
    model.precondition(Preconditioner(MEAN, COVARIANCE, "exact"))
    # the untrained flow is N(m, Σ) × N(0, Σ⁻¹): log q + energy is the constant −log Z, every importance weight equal
    x = torch.randn(6, 6, generator=gen(32), dtype=torch.float64) * 5 + torch.cat([MEAN, torch.zeros(3)])
    total = model.log_prob(x) + joint_energy(model, raw_regression_potential)(x)
    log_z = 0.5 * torch.logdet(2 * math.pi * COVARIANCE) + 1.5 * math.log(2 * math.pi)
    torch.testing.assert_close(total, torch.full_like(total, -float(log_z)))
    resampled = importance_resample(model, raw_regression_potential, 4000, 10, generator=gen(33))
    assert resampled.ess > 3999.9
    assert abs(resampled.log_normalizer - 0.5 * float(torch.logdet(2 * math.pi * COVARIANCE))) < 1e-8
    # saved and reloaded with its preconditioner
    save_model(tmp_path / "model.pt", model)
    again = load(tmp_path / "model.pt").double()
    assert again.preconditioner is not None
    torch.testing.assert_close(again.log_prob(x), model.log_prob(x))


@pytest.mark.statistical
def test_train_sampler_preconditions_by_default_and_flow_samplers_stay_exact():
    fixed_manual_seed(0)
    model = FlowSampler.canonical(3, blocks=1, hidden=8).double()
    config = TrainConfig(steps=30, lr=1e-3, progress=False)
    train_sampler(model, raw_regression_potential, config, batch_size=64)
    assert model.preconditioner is not None
    resampled = importance_resample(model, raw_regression_potential, 4000, 10, generator=gen(34))
    assert resampled.ess > 1000  # starts at the posterior (without: ~1 of 4000, the flow at N(0, I))
    result = neutra_nuts(model, raw_regression_potential, 100, 8, warmup=100, generator=gen(35))
    assert_moments(result.samples, MEAN, torch.diagonal(COVARIANCE))
    assert result.extra["tree_depth"].float().mean() < 3


@pytest.mark.statistical
def test_warmup_moments_estimate_location_and_scale():
    fit = fit_preconditioner(raw_regression_potential, 3, "moments", generator=gen(36))
    assert fit.method == "moments" and fit.gradient_evaluations > 0
    se = torch.diagonal(COVARIANCE).sqrt() / math.sqrt(50)  # 400 correlated draws are worth well over 50
    assert ((fit.mean - MEAN).abs() < Z_SCORE * se).all()
    ratio = torch.diagonal(fit.covariance) / torch.diagonal(COVARIANCE)
    assert ((ratio > 0.4) & (ratio < 2.5)).all()


def test_precondition_bad_input():
    model = FlowSampler.canonical(2, blocks=1, hidden=4).double()
    with pytest.raises(ValueError, match="train_sampler: unknown precondition"):
        train_sampler(model, raw_regression_potential, TrainConfig(steps=1, progress=False), precondition="pca")
    with pytest.raises(ValueError, match="FlowSampler.precondition: expected a fit of dimension 2"):
        model.precondition(laplace(raw_regression_potential, 3, generator=gen(37)))
