"""``canonflow/sampling/diagnostics.py``: ESS (bulk, tail, mean), split-R̂ and MCSE against analytic values and ArviZ."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import rng

from canonflow.sampling import ess, ess_bulk, ess_mean, ess_tail, mcse_mean, rhat


def ar1(phi: float, draws: int, chains: int, seed: int) -> np.ndarray:
    random = rng(seed)
    noise = random.standard_normal((draws, chains)) * math.sqrt(1 - phi**2)
    x = np.empty((draws, chains))
    x[0] = random.standard_normal(chains)
    for t in range(1, draws):
        x[t] = phi * x[t - 1] + noise[t]
    return x


# The ESS estimators' own scatter, measured once over 300 seeds (numpy default_rng 10000 ..): relative
# sd 0.030 for 1000 × 8 iid draws (tail ESS: 0.030, mean 0.97), 0.031 and 0.066 for 4000 × 8 draws of AR(1) with
# φ = 0.5 and 0.9; it falls as 1/√draws. The draws below make ±15 % (±25 % tail) at least Z_SCORE of those sds, so
# these tests catch a wrong autocorrelation sum or truncation (off by tens of per cent), not the estimator's noise.
@pytest.mark.statistical
def test_ess_of_iid_draws_is_about_n():
    x = rng(0).standard_normal((2000, 8))  # relative sd of the ESS 0.021: ±15 % is 7 sd
    for value in (ess_bulk(x), ess_mean(x)):
        assert 0.85 * x.size < value < 1.15 * x.size
    assert 0.75 * x.size < ess_tail(x) < 1.25 * x.size
    assert abs(rhat(x) - 1) < 0.01  # sd of R̂ − 1 about 4e-4 here


@pytest.mark.statistical
@pytest.mark.parametrize(("phi", "draws"), [(0.5, 8000), (0.9, 32000)])
def test_ess_of_ar1_chains_matches_analytic_value(phi, draws):
    x = ar1(phi, draws, 8, seed=1)  # relative sd of the ESS 0.022 and 0.023: ±15 % is 6.5 sd
    expected = x.size * (1 - phi) / (1 + phi)
    assert abs(ess_mean(x) / expected - 1) < 0.15
    assert abs(ess_bulk(x) / expected - 1) < 0.15


@pytest.mark.statistical
def test_rhat_flags_chains_that_disagree():
    x = rng(2).standard_normal((500, 4))
    x[:, 0] += 2.0
    assert rhat(x) > 1.1
    drifting = rng(3).standard_normal((500, 4)) + np.linspace(0, 3, 500)[:, None]
    assert rhat(drifting) > 1.1  # split chains expose a trend within each chain


@pytest.mark.parametrize(("draws", "chains"), [(1000, 1), (501, 4), (101, 2), (8, 3)])
def test_diagnostics_equal_arviz(draws, chains):
    # ArviZ (optional extra canonflow[arviz]) implements the same estimators; they must agree to rounding, on
    # random walks (short truncation), AR(1) chains (long) and chains with a shifted mean (large R̂).
    az = pytest.importorskip("arviz")
    random = rng(draws + chains)
    x = random.standard_normal((draws, chains, 3)).cumsum(0) * 0.05 + random.standard_normal((draws, chains, 3))
    x[:, 0, 0] += 0.3
    x[:, :, 2] = ar1(0.9, draws, chains, seed=draws)
    for k in range(3):
        column = x[:, :, k].T  # ArviZ's (chain, draw) layout
        for kind in ("bulk", "tail", "mean"):
            assert ess(x[:, :, k], kind) == pytest.approx(az.ess(column, method=kind), rel=1e-10), kind
        if chains > 1:  # ArviZ returns NaN for one chain; the split-R̂ of its two halves is defined here
            assert rhat(x[:, :, k]) == pytest.approx(az.rhat(column, method="rank"), rel=1e-10)
        assert mcse_mean(x[:, :, k]) == pytest.approx(az.mcse(column, method="mean"), rel=1e-10)


def test_diagnostics_handle_several_coordinates():
    x = rng(4).standard_normal((200, 4, 3))
    assert np.asarray(ess_bulk(x)).shape == (3,)
    assert np.asarray(rhat(torch.from_numpy(x))).shape == (3,)
