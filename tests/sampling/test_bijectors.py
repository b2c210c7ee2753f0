"""``canonflow/sampling/bijectors.py``: exact inverses and log-Jacobians, constrained sampling and summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import Z_SCORE, gen

from canonflow.sampling import (
    Interval,
    ParameterSpace,
    Positive,
    Real,
    Simplex,
    initial_points,
    mcse_quantile,
    mcse_sd,
    nuts,
)


@pytest.mark.parametrize(("bijector", "size"), [(Real(), 2), (Positive(), 3), (Interval(-1.0, 3.0), 2), (Simplex(), 4)])
def test_inverse_and_log_jacobian_are_exact(bijector, size):
    k = bijector.unconstrained_size(size)
    y = torch.randn(5, k, generator=gen(41), dtype=torch.float64)
    theta = bijector.forward(y)
    torch.testing.assert_close(bijector.inverse(theta), y)
    # log|det J| against autograd's Jacobian (for the simplex: of the first K − 1 entries, which determine it)
    for row in range(2):
        jac = torch.autograd.functional.jacobian(lambda v: bijector.forward(v[None])[0, :k], y[row])
        torch.testing.assert_close(bijector.log_abs_det_jacobian(y[row : row + 1])[0], torch.linalg.slogdet(jac)[1])
    if isinstance(bijector, Simplex):
        torch.testing.assert_close(theta.sum(-1), torch.ones(5, dtype=torch.float64))
        assert (theta > 0).all()


@pytest.mark.statistical
def test_nuts_on_constrained_parameters_matches_their_exact_moments():
    # σ ~ Gamma(3, 2) (mean 1.5, var 0.75), w ~ Dirichlet(2, 3, 5), u ~ Beta(2, 2) on (0, 1) scaled to (−1, 3)
    space = ParameterSpace({"sigma": (Positive(), ()), "w": (Simplex(), (3,)), "u": (Interval(-1.0, 3.0), ())})
    alpha = torch.tensor([2.0, 3.0, 5.0], dtype=torch.float64)

    def log_density(theta: dict[str, torch.Tensor]) -> torch.Tensor:
        sigma, w, u = theta["sigma"], theta["w"], (theta["u"] + 1) / 4
        return 2 * torch.log(sigma) - 2 * sigma + ((alpha - 1) * torch.log(w)).sum(-1) + torch.log(u * (1 - u))

    potential = space.potential(log_density)
    x0 = initial_points(potential, space.dim, 8, generator=gen(42))
    result = nuts(potential, x0, 200, warmup=150, generator=gen(43))
    summary = space.summary(result.samples)
    exact_mean = {"sigma": np.array(1.5), "w": (alpha / alpha.sum()).numpy(), "u": np.array(1.0)}
    a0 = float(alpha.sum())
    exact_sd = {
        "sigma": np.sqrt(0.75),
        "w": np.sqrt((alpha * (a0 - alpha) / (a0**2 * (a0 + 1))).numpy()),
        "u": 4 * np.sqrt(4 / (16 * 5)),
    }
    for name in ("sigma", "w", "u"):
        stats = summary[name]
        assert (np.abs(stats["mean"] - exact_mean[name]) < Z_SCORE * stats["mcse_mean"]).all(), name
        assert (np.abs(stats["sd"] - exact_sd[name]) < Z_SCORE * stats["mcse_sd"]).all(), name
        assert (stats["rhat"] < 1.05).all()
    assert summary["w"]["mean"].shape == (3,) and summary["sigma"]["q50"].shape == ()
    idata = result.to_arviz(space=space)
    assert idata.posterior["w"].shape == (8, 200, 3)
    assert "tree_depth" in idata.sample_stats


@pytest.mark.statistical
def test_mcse_of_sd_and_quantile_match_their_scatter_over_independent_runs():
    # 200 independent runs of AR(1) chains: the spread of the sd and median estimates matches their MCSE
    runs, phi = 200, 0.5
    noise = torch.randn(runs, 400, 4, generator=gen(44), dtype=torch.float64).numpy()
    x = np.zeros_like(noise)
    for t in range(1, noise.shape[1]):
        x[:, t] = phi * x[:, t - 1] + math.sqrt(1 - phi**2) * noise[:, t]
    sds = np.array([x[r].std(ddof=1) for r in range(runs)])
    medians = np.array([np.median(x[r]) for r in range(runs)])
    mcse_s = np.mean([mcse_sd(x[r]) for r in range(runs)])
    mcse_m = np.mean([mcse_quantile(x[r], 0.5) for r in range(runs)])
    # the ratio of the empirical sd over 200 runs to the mean MCSE: 1 within ~5 % (chi² of 199 dof) plus the
    # estimators' own bias; 0.75–1.33 rejects an error by a factor √(1 + 2φ/(1 − φ))-like (missing the ESS)
    assert 0.75 < sds.std(ddof=1) / mcse_s < 1.33
    assert 0.75 < medians.std(ddof=1) / mcse_m < 1.33


def test_parameter_space_bad_input():
    with pytest.raises(ValueError, match="Interval: expected finite low < high"):
        Interval(1.0, 1.0)
    with pytest.raises(ValueError, match="Simplex: a simplex needs at least 2"):
        ParameterSpace({"w": (Simplex(), (1,))})
    with pytest.raises(TypeError, match="must be \\(Bijector, shape\\)"):
        ParameterSpace({"w": "positive"})
    space = ParameterSpace({"a": (Real(), (2,))})
    with pytest.raises(ValueError, match=r"ParameterSpace.constrain: expected y of shape \(B, 2\)"):
        space.constrain(torch.zeros(3, 3))
