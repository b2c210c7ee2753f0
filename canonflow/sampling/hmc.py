"""Hamiltonian Monte Carlo for many chains at once, with Stan-style warm-up.

To sample ``π(q) ∝ e^{−U(q)}`` on ``ℝ^d``, HMC extends it with momenta ``p ~ N(0, M)`` to the joint density
``e^{−H(q, p)}``, ``H = U(q) + pᵀM⁻¹p/2``, and in each transition draws fresh momenta, integrates Hamilton's
equations with ``L`` leapfrog steps of size ``ε`` (``canonflow.integrators.leapfrog``) and accepts the end
point with probability ``min(1, e^{−ΔH})``. Leapfrog is symplectic (volume-preserving) and time-reversible,
so this Metropolis–Hastings correction makes the chain exactly ``π``-invariant whatever ``ε``.

Warm-up (discarded) is the one of :func:`canonflow.sampling.warmup.warmup_kernel`, shared with NUTS: Stan's
windows, dual averaging of a step size per chain (Hoffman & Gelman 2014), a diagonal or dense inverse mass
matrix (by default dense for ``d ≤ 50``) re-estimated at the end of each slow window from the chains that are not
stuck, and stuck chains restarted at healthy ones' states. Sampling uses each chain's averaged step size ``ε̄_c``,
jittered uniformly by ``±jitter`` per transition and chain. A transition whose energy error ``ΔH`` exceeds
``divergence_threshold`` or is not finite (e.g. the potential returned NaN) is *divergent*: it is rejected and
reported in ``SamplingResult.divergent``.
"""

from __future__ import annotations

import torch

from canonflow.sampling.euclidean_metric import Metric, leapfrog_step
from canonflow.sampling.potential import CountingPotential, Potential
from canonflow.sampling.result import SamplingResult
from canonflow.sampling.warmup import prepare_chains, run_chains
from canonflow.validation import check_positive_int

__all__ = ["hmc"]


class _Kernel:
    """One HMC transition for all chains (``num_steps`` leapfrog steps, per-chain step sizes, Metropolis–Hastings);
    keeps the current states, potentials and gradients (the ``Kernel`` of ``canonflow.sampling.warmup``)."""

    def __init__(
        self, potential: CountingPotential, x: torch.Tensor, u: torch.Tensor, g: torch.Tensor, threshold: float
    ) -> None:
        self.potential, self.x, self.u, self.g = potential, x, u, g
        self.threshold = threshold
        self.metric = Metric(torch.ones(x.shape[1], dtype=x.dtype, device=x.device))
        self.num_steps = 1

    def transition(
        self, step_sizes: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One transition of every chain; returns ``(accept_prob, divergent, accepted)``, each ``(B,)``."""
        x, metric = self.x, self.metric
        p = metric.sample_momentum(x.shape[0], generator)
        h0 = self.u + metric.kinetic(p)
        eps = step_sizes.to(x.device)
        q, u, g = x, self.u, self.g
        with torch.no_grad():
            for _ in range(self.num_steps):
                q, p, u, g = leapfrog_step(self.potential, metric, q, p, g, eps)
        delta = u + metric.kinetic(p) - h0
        finite = torch.isfinite(delta) & torch.isfinite(q).all(-1) & torch.isfinite(g).all(-1)
        divergent = ~finite | (delta > self.threshold)
        accept_prob = torch.where(divergent, torch.zeros_like(delta), torch.exp(torch.clamp(-delta, max=0.0)))
        accept_prob = torch.nan_to_num(accept_prob, nan=0.0)
        accepted = torch.rand(delta.shape, generator=generator, dtype=delta.dtype).to(x.device) < accept_prob
        keep = accepted[:, None]
        self.x = torch.where(keep, q, x)
        self.u = torch.where(accepted, u, self.u)
        self.g = torch.where(keep, g, self.g)
        return accept_prob, divergent, accepted


def hmc(
    potential: Potential,
    x0: torch.Tensor,
    num_samples: int,
    *,
    warmup: int = 500,
    num_steps: int = 10,
    step_size: float | torch.Tensor | None = None,
    target_accept: float = 0.8,
    adapt_mass: bool = True,
    metric: str = "auto",
    inverse_mass: torch.Tensor | None = None,
    jitter: float = 0.3,
    divergence_threshold: float = 1000.0,
    restart_stuck: bool = True,
    generator: torch.Generator | None = None,
) -> SamplingResult:
    """Run ``x0.shape[0]`` HMC chains on ``π ∝ e^{−U}`` and return ``num_samples`` draws per chain.

    ``potential``: ``U(q) -> (B,)`` for ``q`` of shape ``(B, d)``, differentiable by autograd; ``x0``: starting
    states ``(chains, d)`` where ``U`` and ``∇U`` are finite (e.g. :func:`~canonflow.sampling.initial_points`).
    ``warmup`` iterations (``0``: no adaptation, ``step_size`` required) run the shared warm-up of
    :func:`canonflow.sampling.warmup.warmup_kernel`: per-chain step sizes adapted to acceptance ``target_accept``
    and, if ``adapt_mass``, the ``metric`` (``"diag"``, ``"dense"`` or ``"auto"``: dense when
    ``d ≤ AUTO_DENSE_MAX_DIM = 50``, diagonal above; :mod:`canonflow.sampling.euclidean_metric`; initial inverse
    mass ``inverse_mass`` ``(d,)`` or ``(d, d)``, default ``I``) from the healthy chains, with stuck chains restarted
    (``restart_stuck``) and reported in ``extra["stuck_chains"]`` (one list per check).

    ``step_size``: initial (or, without warm-up, fixed) step size, a float or one per chain ``(chains,)``;
    ``None`` finds one heuristically. Each transition runs ``num_steps`` leapfrog steps of size
    ``ε_c·U(1 − jitter, 1 + jitter)`` (drawn per chain). Returns a ``SamplingResult`` with samples
    ``(num_samples, chains, d)``, acceptance probabilities, divergences, the adapted step sizes
    (``step_sizes``; ``step_size`` is their median) and metric, and per-chain gradient counts
    (``num_steps`` per transition).
    """
    who = "hmc"
    check_positive_int(num_steps, "num_steps", who)
    if not 0 <= jitter < 1:
        raise ValueError(f"{who}: expected 0 <= jitter < 1, got {jitter}")
    setup = prepare_chains(
        who, potential, x0, num_samples, warmup, step_size, target_accept, metric, inverse_mass, divergence_threshold
    )
    kernel = _Kernel(setup.potential, setup.x0, setup.u0, setup.g0, divergence_threshold)
    kernel.num_steps = num_steps

    def jittered(eps: torch.Tensor) -> torch.Tensor:
        if jitter == 0:
            return eps
        u = torch.rand(eps.shape, generator=generator, dtype=torch.float64)
        return eps * (1 + jitter * (2 * u - 1))

    return run_chains(
        kernel,
        setup,
        num_samples,
        warmup,
        target_accept=target_accept,
        adapt_mass=adapt_mass,
        restart_stuck=restart_stuck,
        jitter=jittered,
        generator=generator,
        num_steps=num_steps,
    )
