"""``canonflow/sampling/result.py``: ``SamplingResult`` and its conversion to ArviZ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from randomness import gen

from canonflow.sampling import hmc
from sampling.common import normal_potential


def test_sampling_result_converts_to_arviz():
    az = pytest.importorskip("arviz")
    result = hmc(normal_potential, torch.zeros(4, 3, dtype=torch.float64), 200, warmup=100, generator=gen(5))
    data = result.to_arviz()
    assert data.posterior["q"].shape == (4, 200, 3)
    assert data.sample_stats["diverging"].shape == (4, 200)
    ess_ours = result.summary()["ess_bulk"]
    ess_arviz = az.ess(data, method="bulk")["q"].values
    np.testing.assert_allclose(ess_ours, ess_arviz, rtol=1e-10)
