"""``canonflow/sampling/flow_mcmc.py``: independence Metropolis-Hastings and importance resampling with a flow."""

from __future__ import annotations

import math

import pytest
from randomness import Z_SCORE, gen

from canonflow.sampling import flow_mcmc, get_target, importance_resample
from sampling.common import assert_moments, checked_coordinates, overdispersed_identity_flow


@pytest.mark.statistical
def test_flow_mcmc_is_exact_with_any_flow():
    # An untrained flow (identity) with an over-dispersed N(0, 2.5² I) base is a poor but valid proposal
    # (bounded weights): independence MH stays exact.
    target = get_target("banana")
    chain = flow_mcmc(overdispersed_identity_flow(), target.potential, 1500, 8, generator=gen(11))
    assert chain.samples.shape == (1500, 8, 2) and chain.gradient_evaluations == 0
    assert_moments(*checked_coordinates("banana", chain.samples, target))


@pytest.mark.statistical
def test_importance_resampling_estimates_the_normalizer_with_any_flow():
    target = get_target("banana")
    resampled = importance_resample(overdispersed_identity_flow(), target.potential, 20000, 500, generator=gen(13))
    # log of a mean of weights: by the delta method its variance is 1/ESS − 1/N
    log_z_se = math.sqrt(1 / resampled.ess - 1 / 20000)
    assert abs(resampled.log_normalizer - math.log(2 * math.pi * target.scale)) < Z_SCORE * log_z_se
