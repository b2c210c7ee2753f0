"""How well an MCMC run did against a target with exact moments: efficiency and a moment check.

For draws ``x_{t,c} ∈ ℝ^d`` (``t`` the draw, ``c`` the chain) of a target with exact mean ``μ`` and variance
``σ²``, :func:`moment_errors` compares the sample mean and variance with the truth in units of their Monte Carlo
standard errors (MCSE, from the ESS of :func:`~canonflow.sampling.mcse_mean`); :func:`sampler_metrics` adds the
ESS per target evaluation and per second, R̂, acceptance and divergences of a
:class:`~canonflow.sampling.SamplingResult`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from canonflow.sampling.diagnostics import mcse_mean
from canonflow.sampling.result import SamplingResult
from canonflow.sampling.targets import GaussianMixture, Target

__all__ = ["moment_errors", "sampler_metrics"]


def moment_errors(samples: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> dict[str, float | bool]:
    """Errors of the sample means and variances of ``samples`` against the exact ``mean`` and ``variance``.

    ``samples``: ``(draws, chains, d)``; ``mean``, ``variance``: ``(d,)``. With ``x̄_i`` the sample mean and
    ``s²_i = mean_{t,c} (x_{t,c,i} − μ_i)²`` the sample variance about the exact mean of coordinate ``i``:

    * ``max_mean_error_in_se = max_i |x̄_i − μ_i| / MCSE(x_i)``,
    * ``max_variance_error_in_se = max_i |s²_i − σ²_i| / MCSE((x_i − μ_i)²)``,
    * ``max_relative_variance_error = max_i |s²_i − σ²_i| / σ²_i``,
    * ``within_4_se``: both maxima below 4.

    >>> draws = torch.randn(1000, 4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> moment_errors(draws, torch.zeros(2), torch.ones(2))["within_4_se"]
    True
    """
    if samples.dim() != 3 or mean.shape != (samples.shape[-1],) or variance.shape != mean.shape:
        raise ValueError(
            f"moment_errors: expected samples (draws, chains, d) and mean, variance (d,), got "
            f"{tuple(samples.shape)}, {tuple(mean.shape)}, {tuple(variance.shape)}"
        )
    draws = samples.detach().double().cpu().numpy()
    mu, sigma2 = mean.double().cpu().numpy(), variance.double().cpu().numpy()
    centred = (draws - mu) ** 2
    flat, flat_c = draws.reshape(-1, draws.shape[-1]), centred.reshape(-1, draws.shape[-1])
    z_mean = np.abs(flat.mean(0) - mu) / np.asarray(mcse_mean(draws))
    z_var = np.abs(flat_c.mean(0) - sigma2) / np.asarray(mcse_mean(centred))
    rel_var = np.abs(flat_c.mean(0) - sigma2) / sigma2
    return {
        "max_mean_error_in_se": float(z_mean.max()),
        "max_variance_error_in_se": float(z_var.max()),
        "max_relative_variance_error": float(rel_var.max()),
        "within_4_se": bool(z_mean.max() < 4 and z_var.max() < 4),
    }


def sampler_metrics(result: SamplingResult, target: Target) -> dict[str, Any]:
    """Efficiency and correctness of one sampler's ``result`` on ``target``.

    ``ess_bulk_min``/``_median``, ``ess_tail_min`` and ``rhat_max`` over coordinates; the evaluations of ``∇U``
    and ``U`` while sampling and ``ess_per_evaluation = ess_bulk_min / (gradient + potential evaluations)`` (a
    gradient counts as one evaluation); ``ess_per_second``; warm-up seconds, evaluations and divergences;
    acceptance, divergences, step size; for an ``exact`` target the :func:`moment_errors` against
    ``target.mean``/``target.variance``;
    for a :class:`~canonflow.sampling.GaussianMixture` the fraction of draws in the left mode (with its MCSE and
    the exact weight) and the number of chains that visited both modes.
    """
    summary = result.summary()
    ess_min = float(np.min(summary["ess_bulk"]))
    out = {
        "ess_bulk_min": ess_min,
        "ess_bulk_median": float(np.median(summary["ess_bulk"])),
        "ess_tail_min": float(np.min(summary["ess_tail"])),
        "rhat_max": float(np.max(summary["rhat"])),
        "gradient_evaluations": result.gradient_evaluations,
        "potential_evaluations": result.potential_evaluations,
        "ess_per_evaluation": ess_min / result.evaluations,
        "sampling_seconds": result.seconds,
        "ess_per_second": ess_min / result.seconds,
        "warmup_seconds": result.warmup_seconds,
        "warmup_evaluations": result.warmup_gradient_evaluations + result.warmup_potential_evaluations,
        "acceptance_rate": result.acceptance_rate,
        "divergences": result.num_divergent,
        "warmup_divergences": result.warmup_divergences,
        "step_size": result.step_size,
    }
    if target.exact:
        out |= moment_errors(result.samples, target.mean, target.variance)
    if isinstance(target, GaussianMixture):
        left = (target.mode_of(result.samples) == 0).double().numpy()
        per_chain = left.mean(0)
        out |= {
            "left_mode_fraction": float(left.mean()),
            "left_mode_se": float(mcse_mean(left)) if np.ptp(left) > 0 else 0.0,
            "left_mode_exact": target.weight,
            "chains_visiting_both_modes": int(((per_chain > 0) & (per_chain < 1)).sum()),
        }
    return out
