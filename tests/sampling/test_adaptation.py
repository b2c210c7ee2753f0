"""``canonflow/sampling/adaptation.py``: dual averaging drives the acceptance statistic to its target."""

from __future__ import annotations

import pytest
import torch
from randomness import gen

from canonflow.sampling import hmc


@pytest.mark.statistical
def test_step_size_adaptation_reaches_target_acceptance():
    def quartic(q: torch.Tensor) -> torch.Tensor:
        return (0.5 * q**2 + 0.25 * q**4).sum(-1)

    x0 = torch.randn(32, 10, generator=gen(7), dtype=torch.float64)
    result = hmc(quartic, x0, 150, warmup=300, num_steps=3, generator=gen(8))
    # dual averaging drives each chain's running mean acceptance to the target over the terminal buffer; the
    # averaged ε̄ of a per-chain (noisy) adaptation then accepts more often, never less (Stan behaves alike)
    assert abs(result.extra["warmup_accept"] - 0.8) < 0.05
    assert 0.8 < result.acceptance_rate < 0.97
