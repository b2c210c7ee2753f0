"""Exact and momentum-augmented negative log-likelihoods of a canonical flow.

For phase-space data ``x = (q, p)`` ``(B, 2n)`` the NLL is exact: ``−log q_θ(x)``. For configuration-only data
``q`` ``(B, n)`` each point is augmented with independent momenta ``p ~ N(0, I)``. The model's ``q``-marginal is
``q_θ(q) = E_{p~N}[q_θ(q, p) / N(p)]``, so with ``NLL_gauss(p) = |p|²/2 + (n/2) ln 2π``

``E_{p~N}[NLL(q, p) − NLL_gauss(p)] = NLL(q) + KL(N(0, I) ‖ q_θ(p | q)) ≥ NLL(q)``  (Jensen),

with equality exactly when ``q_θ(p | q) = N(0, I)``: minimizing the left side fits the ``q``-marginal (the
"augmented normalizing flow" objective). :func:`nll` reports this corrected value or, with
``importance_weighted=True``, the tighter ``−log (1/K) Σ_k q_θ(q, p_k)/N(p_k)`` that tends to ``NLL(q)``.
"""

from __future__ import annotations

import math

import torch

from canonflow.flow import CanonicalFlow, check_flow
from canonflow.validation import as_samples, check_positive_int

__all__ = ["augment_momenta", "gaussian_nll", "nll"]


def augment_momenta(q: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B, n) -> (B, 2n)``: append independent momenta ``p ~ N(0, I)`` drawn with ``generator``."""
    p = torch.randn(q.shape, generator=generator, dtype=q.dtype).to(q.device)
    return torch.cat([q, p], dim=-1)


def gaussian_nll(p: torch.Tensor) -> torch.Tensor:
    """``NLL_gauss(p) = |p|²/2 + (n/2) ln 2π`` of the augmentation distribution ``N(0, I)``; ``(B, n) -> (B,)``."""
    return 0.5 * p.pow(2).sum(-1) + 0.5 * p.shape[-1] * math.log(2 * math.pi)


def nll(
    flow: CanonicalFlow,
    data: torch.Tensor,
    *,
    num_momenta: int = 1,
    importance_weighted: bool = False,
    generator: torch.Generator | None = None,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Per-sample negative log-likelihood in nats, shape ``(B,)``, computed without a graph.

    Phase-space ``data`` ``(B, 2n)``: the exact ``−log q_θ(x)``. Configurations ``(B, n)``: with ``K =
    num_momenta`` draws ``p_k ~ N(0, I)`` and ``log r_k = log q_θ(q, p_k) + NLL_gauss(p_k)``, the corrected
    ``−(1/K) Σ_k log r_k`` (default; ``≥ NLL(q)`` in expectation, equal when ``q_θ(p|q) = N(0, I)``), or with
    ``importance_weighted=True`` ``−log (1/K) Σ_k r_k`` (a stochastic upper bound that tightens to ``NLL(q)``).
    """
    who = "nll"
    n = check_flow(flow, who).n
    check_positive_int(num_momenta, "num_momenta", who)
    check_positive_int(batch_size, "batch_size", who)
    data = as_samples(data, n, who, flow.base.loc)
    out = []
    with torch.no_grad():
        for chunk in data.split(batch_size):
            if chunk.shape[1] == 2 * n:
                out.append(-flow.log_prob(chunk))
                continue
            log_r = []
            per_pass = max(1, batch_size // len(chunk))
            for start in range(0, num_momenta, per_pass):
                draws = min(per_pass, num_momenta - start)
                x = augment_momenta(chunk.repeat(draws, 1), generator)
                log_r.append((flow.log_prob(x) + gaussian_nll(x[:, n:])).view(draws, len(chunk)))
            log_r = torch.cat(log_r)
            if importance_weighted:
                out.append(math.log(num_momenta) - torch.logsumexp(log_r, 0))
            else:
                out.append(-log_r.mean(0))
    return torch.cat(out)
