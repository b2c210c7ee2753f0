"""``canonflow/sampling/neutra.py``: NeuTra-HMC (HMC in the flow's latent space) stays exact with any flow."""

from __future__ import annotations

import pytest
from randomness import gen

from canonflow.sampling import get_target, neutra_hmc
from sampling.common import assert_moments, checked_coordinates, overdispersed_identity_flow


@pytest.mark.statistical
def test_neutra_hmc_is_exact_with_any_flow():
    # An untrained flow (identity) with an over-dispersed N(0, 2.5² I) base: HMC in its latent space stays exact.
    target = get_target("banana")
    model = overdispersed_identity_flow()
    latent = neutra_hmc(model, target.potential, 150, 16, generator=gen(12), warmup=150, num_steps=4)
    assert latent.samples.shape == (150, 16, 2)
    assert_moments(*checked_coordinates("banana", latent.samples, target))
