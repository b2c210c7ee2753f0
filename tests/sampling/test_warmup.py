"""``canonflow/sampling/warmup.py``: stuck chains found, restarted and reported."""

from __future__ import annotations

import pytest
import torch
from randomness import gen

from canonflow.sampling import hmc, nuts


def walled_potential(q: torch.Tensor) -> torch.Tensor:
    """A standard normal, and past ``q > 20`` a narrow local mode at 40, 10⁶ nats up (no mass), walled off by a
    barrier: a chain started there stays, unless an unstable leapfrog trajectory flings it out."""
    u = 0.5 * q.pow(2).sum(-1)
    far = q[:, 0] > 20
    return torch.where(far, 1e6 + 1e4 * (q - 40).pow(2).sum(-1), u)


@pytest.mark.parametrize("sampler", ["hmc", "nuts"])
def test_stuck_chain_is_restarted_and_reported(sampler):
    x0 = torch.randn(6, 1, generator=gen(25), dtype=torch.float64)
    x0[2] = 40.0
    run = nuts if sampler == "nuts" else hmc
    options = {"num_steps": 3} if sampler == "hmc" else {}
    result = run(walled_potential, x0, 60, warmup=100, generator=gen(26), **options)
    assert any(2 in restarted for restarted in result.extra["stuck_chains"])
    assert result.extra["stuck_after_warmup"] == []
    assert (result.samples.abs() < 20).all()
    without = run(walled_potential, x0, 10, warmup=100, generator=gen(26), restart_stuck=False, **options)
    assert any(2 in stuck for stuck in without.extra["stuck_chains"])  # reported, though not restarted
