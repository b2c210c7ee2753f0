"""Shared set-up of the sampling tests: a standard normal potential, exact-moment checks, an untrained flow."""

from __future__ import annotations

import math

import numpy as np
import torch
from randomness import Z_SCORE, fixed_manual_seed

from canonflow.sampling import FlowSampler, mcse_mean


def normal_potential(q: torch.Tensor) -> torch.Tensor:
    return 0.5 * q.pow(2).sum(-1)


def assert_moments(samples: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> None:
    """Means and variances of ``(N, chains, d)`` draws within ``Z_SCORE`` Monte Carlo standard errors of exact.

    The standard errors come from the ESS of each coordinate (and of its squared deviation), so a chain that mixes
    slowly is judged by the draws it is worth; 2d comparisons of the suite's budget (``randomness.py``). Catches a
    sampler whose stationary law is not the target (wrong acceptance ratio, a non-reversible or non-volume-preserving
    proposal, a mis-normalized flow) by more than a few standard errors."""
    draws = samples.detach().double().numpy()
    se_mean = np.asarray(mcse_mean(draws))
    centred = (draws - mean.numpy()) ** 2
    se_var = np.asarray(mcse_mean(centred))
    err_mean = np.abs(draws.reshape(-1, draws.shape[-1]).mean(0) - mean.numpy())
    err_var = np.abs(centred.reshape(-1, draws.shape[-1]).mean(0) - variance.numpy())
    assert (err_mean < Z_SCORE * se_mean).all(), (err_mean, se_mean)
    assert (err_var < Z_SCORE * se_var).all(), (err_var, se_var)


def checked_coordinates(name: str, samples: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draws and the exact means and variances to check them against.

    The funnel's ``Var x_i = E eᵛ`` is a mean of ``eᵛχ²₁``, whose variance ``3e^{2σ²} − e^{σ²}`` makes the
    Monte Carlo standard error of a short run meaningless (exact draws of 8000 fail a 4-s.e. check in half of
    the seeds), so it is checked through the whitened ``y_i = x_i e^{−v/2} ~ N(0, 1)``, independent of ``v``
    under the target: ``(v, y)`` has mean 0 and variances ``(σ², 1, ..., 1)``. Likewise the banana's
    ``Var q₂ = 1 + 2b²s⁴`` is a mean of a heavy-tailed square (``q₁⁴`` terms), whose standard error 8 × 200 NeuTra
    draws underestimate (5.5 s.e. off on a shifted seed); it is checked untwisted, ``(q₁, q₂ − b(q₁² − s²)) ~
    N(0, diag(s², 1))``. Every other target is checked on its own coordinates.
    """
    if name == "banana":
        q1, q2 = samples[..., 0], samples[..., 1]
        untwisted = torch.stack([q1, q2 - target.twist * (q1**2 - target.scale**2)], dim=-1)
        variance = torch.tensor([target.scale**2, 1.0], dtype=torch.float64)
        return untwisted, target.mean, variance
    if name != "funnel":
        return samples, target.mean, target.variance
    v, x = samples[..., :1], samples[..., 1:]
    whitened = torch.cat([v, x * torch.exp(-v / 2)], dim=-1)
    variance = torch.ones(target.dim, dtype=torch.float64)
    variance[0] = target.scale**2
    return whitened, torch.zeros(target.dim, dtype=torch.float64), variance


def overdispersed_identity_flow() -> FlowSampler:
    """An untrained canonical flow (the identity) with an over-dispersed ``N(0, 2.5² I)`` base, in float64.

    A poor but valid proposal for the banana target (bounded weights): samplers built on it stay exact."""
    fixed_manual_seed(0)
    model = FlowSampler.canonical(2, blocks=1, hidden=8).double()
    with torch.no_grad():
        model.base.log_scale.fill_(math.log(2.5))
    return model
