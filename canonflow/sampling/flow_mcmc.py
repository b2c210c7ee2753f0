"""Exact sampling with a canonical flow as proposal: independence Metropolis–Hastings and importance resampling.

The flow ``q(x)`` (a ``CanonicalFlow``, e.g. a ``FlowSampler``, on the augmented space ``x = (q, p) ∈ ℝ^{2d}``)
has an exact density, ``log q(x) = log q₀(T(x))`` (``log|det J| = 0``), so the importance weight of a draw for the
joint target ``π(x) ∝ e^{−U(q) − |p|²/2}`` is ``log w(x) = −U(q) − |p|²/2 − log q(x)``, exact up to the constant
``log Z`` (with learned auxiliary momenta, ``|p|²/2`` is replaced by ``−log r(p | q)``:
``FlowSampler.joint_potential``).

- *Independence MH*: propose ``x' ~ q`` independently of the current ``x`` and accept with probability
  ``min(1, w(x')/w(x))``; the chain is exactly ``π``-invariant and its efficiency is governed by how well
  ``q`` covers ``π`` (acceptance → 1 as ``q → π``). Proposals can jump between modes.
- *Importance resampling*: draw ``N`` proposals, resample with probabilities ``∝ w``; ``log Ẑ =
  log mean w`` is an unbiased-in-``Z`` estimate of the joint normalizer, and ``log Ẑ − (d/2) log 2π`` that of
  ``∫ e^{−U(q)} dq``. The Kish ESS ``(Σw)²/Σw²`` measures the weights' quality.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from canonflow.estimators import kish_ess, log_importance_weights, log_normalizer
from canonflow.flow import CanonicalFlow, check_flow
from canonflow.sampling.model import joint_energy
from canonflow.sampling.potential import Potential
from canonflow.sampling.result import SamplingResult
from canonflow.validation import check_positive_int

__all__ = ["flow_mcmc", "importance_resample", "ImportanceResult", "log_weights"]


def log_weights(
    flow: CanonicalFlow, potential: Potential, num: int, generator: torch.Generator | None = None, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` proposals ``x ~ q`` ``(num, 2d)`` and their log importance weights for the joint target
    (:func:`canonflow.estimators.log_importance_weights` with the energy of
    :func:`~canonflow.sampling.model.joint_energy`: ``−U(q) − |p|²/2 − log q(x)`` with standard momenta).

    Non-finite weights (e.g. ``U`` is NaN there) become ``−∞``: such proposals are never accepted.
    """
    check_flow(flow, "log_weights")
    x, log_w = log_importance_weights(flow, joint_energy(flow, potential), 1.0, num, generator, chunk)
    return x, torch.where(torch.isfinite(log_w), log_w, torch.full_like(log_w, -math.inf))


def flow_mcmc(
    flow: CanonicalFlow,
    potential: Potential,
    num_samples: int,
    chains: int = 16,
    *,
    generator: torch.Generator | None = None,
) -> SamplingResult:
    """Independence Metropolis–Hastings with proposals from ``flow``: ``chains`` chains of ``num_samples`` draws.

    Each chain starts at a proposal (no warm-up is needed when ``q`` covers ``π``). Every transition costs one
    evaluation of ``U`` and no gradient. Returns a ``SamplingResult`` with ``q``-space ``samples``
    ``(num_samples, chains, d)``; ``divergent`` marks proposals with a non-finite weight (always rejected).
    """
    who = "flow_mcmc"
    check_flow(flow, who)
    check_positive_int(num_samples, "num_samples", who)
    check_positive_int(chains, "chains", who)
    started = time.perf_counter()
    x, log_w = log_weights(flow, potential, (num_samples + 1) * chains, generator)
    x = x.reshape(num_samples + 1, chains, -1)
    log_w = log_w.reshape(num_samples + 1, chains)
    if not torch.isfinite(log_w[0]).all():
        bad = (~torch.isfinite(log_w[0])).nonzero().flatten().tolist()[:10]
        raise ValueError(f"{who}: the initial proposals of chains {bad} have non-finite weight; check the potential")
    current, current_log_w = x[0], log_w[0]
    uniforms = torch.rand(num_samples, chains, generator=generator, dtype=log_w.dtype)
    samples, probs, accepts = [], [], []
    for t in range(1, num_samples + 1):
        prob = torch.exp(torch.clamp(log_w[t] - current_log_w, max=0.0))
        accepted = uniforms[t - 1] < prob
        current = torch.where(accepted[:, None], x[t], current)
        current_log_w = torch.where(accepted, log_w[t], current_log_w)
        samples.append(current)
        probs.append(prob)
        accepts.append(accepted)
    samples_q = torch.stack(samples)[..., : flow.n]
    return SamplingResult(
        samples=samples_q,
        accept_prob=torch.stack(probs),
        accepted=torch.stack(accepts),
        divergent=~torch.isfinite(log_w[1:]),
        potential_evaluations=num_samples * chains,
        warmup_potential_evaluations=chains,
        seconds=time.perf_counter() - started,
    )


@dataclass
class ImportanceResult:
    """``samples`` ``(num_samples, d)`` resampled from ``proposals`` ``(N, d)`` (``q`` halves) with
    ``log_weights`` ``(N,)``; ``ess`` the Kish effective sample size; ``log_normalizer`` the estimate of
    ``log ∫ e^{−U(q)} dq``."""

    samples: torch.Tensor
    proposals: torch.Tensor
    log_weights: torch.Tensor
    ess: float
    log_normalizer: float


def importance_resample(
    flow: CanonicalFlow,
    potential: Potential,
    num_proposals: int,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> ImportanceResult:
    """Draw ``num_proposals`` from ``flow``, weight them by ``π/q`` and resample ``num_samples`` (multinomial,
    with replacement). Self-normalized importance sampling is consistent as ``num_proposals → ∞``."""
    who = "importance_resample"
    check_flow(flow, who)
    check_positive_int(num_proposals, "num_proposals", who)
    check_positive_int(num_samples, "num_samples", who)
    x, log_w = log_weights(flow, potential, num_proposals, generator)
    if not torch.isfinite(log_w).any():
        raise ValueError(f"{who}: every proposal has zero weight; check the potential and the flow")
    normalized = torch.softmax(log_w, 0)
    index = torch.multinomial(normalized, num_samples, replacement=True, generator=generator)
    q = x[:, : flow.n]
    return ImportanceResult(
        samples=q[index],
        proposals=q,
        log_weights=log_w,
        ess=kish_ess(log_w),
        log_normalizer=log_normalizer(log_w) - 0.5 * flow.n * math.log(2 * math.pi),
    )
