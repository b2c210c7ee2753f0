"""``canonflow/density/likelihood.py``: the NLL of configurations under a flow on momentum-augmented data."""

from __future__ import annotations

import pytest
import torch
from gaussians import F64
from layer_contract import randomize_
from nflows.transforms import CompositeTransform
from randomness import Z_SCORE, fixed_manual_seed, gen

from canonflow import CanonicalFlow
from canonflow.density import (
    gaussian_nll,
    nll,
)
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.transforms import LinearSymplectic


@pytest.mark.statistical
def test_augmented_momentum_correction_matches_direct_computation() -> None:
    # Linear flow + normal base: the joint model is N(0, Σ) with Σ = S⁻¹S⁻ᵀ; compare the corrected NLL with
    # the exact q-marginal NLL plus the exact KL(N(0, I) ‖ q(p|q)), and the importance-weighted estimate with
    # the exact marginal.
    fixed_manual_seed(7)  # the flow and the points q are the set-up; the momenta are the Monte Carlo draws
    n = 2
    layer = randomize_(LinearSymplectic(n, householder=2, full=True).double(), 0.15, seed=7)
    flow = CanonicalFlow(CompositeTransform([layer]), PhaseSpaceGaussian.standard(n)).double()
    s_inv = torch.linalg.inv(layer.matrix().detach())
    cov = s_inv @ s_inv.T
    cqq, cqp, cpp = cov[:n, :n], cov[:n, n:], cov[n:, n:]
    q = torch.randn(5, n, dtype=F64)
    marginal = -torch.distributions.MultivariateNormal(torch.zeros(n, dtype=F64), cqq).log_prob(q)
    gain = cqp.T @ torch.linalg.inv(cqq)
    cond_cov = cpp - gain @ cqp
    cond_mean = q @ gain.T
    kl = 0.5 * (
        torch.trace(torch.linalg.inv(cond_cov))
        + ((cond_mean @ torch.linalg.inv(cond_cov)) * cond_mean).sum(-1)
        - n
        + torch.logdet(cond_cov)
    )
    generator = gen(8)
    repeated = q.repeat_interleave(40000, 0)
    corrected = nll(flow, repeated, generator=generator).view(5, -1)
    torch.testing.assert_close(corrected.mean(1), marginal + kl, rtol=0, atol=Z_SCORE * corrected.std(1).max() / 200)
    # the importance-weighted estimate is a stochastic upper bound that tightens towards the exact marginal
    weighted = nll(flow, q, num_momenta=100_000, importance_weighted=True, generator=generator)
    assert kl.max() > 0.5  # the conditional q(p|q) is far from N(0, I): the bound has a real gap to close
    torch.testing.assert_close(weighted, marginal, rtol=0, atol=0.03)
    # one draw by hand
    x = torch.cat([q, torch.randn(5, n, dtype=F64)], -1)
    direct = -flow.log_prob(x) - gaussian_nll(x[:, n:])
    torch.testing.assert_close(direct, -(flow.log_prob(x) + gaussian_nll(x[:, n:])))
    torch.testing.assert_close(nll(flow, x), -flow.log_prob(x))
