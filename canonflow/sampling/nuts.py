"""The no-U-turn sampler (NUTS) for many chains at once: multinomial sampling and Stan's U-turn criterion.

Each transition draws momenta ``p ~ N(0, M)`` and builds a trajectory of leapfrog states by doubling: at depth
``j`` a direction ``v = ±1`` is drawn and a subtree of ``2^j`` states is integrated from the trajectory's end in
that direction (step ``v ε``). Every state ``z`` has weight ``w(z) = e^{−H(z)}``.

- *Within a subtree* a candidate is drawn from the states with probabilities ``∝ w`` (progressively: state ``k``
  replaces the candidate with probability ``w_k / Σ_{i≤k} w_i``, which gives the multinomial law over the subtree).
- *Between trajectory and new subtree* (biased progressive sampling, Betancourt 2017): the subtree's candidate
  replaces the current sample with probability ``min(1, W_new/W_old)``, ``W`` the summed weights.
- *U-turns* (Stan's generalized criterion): a trajectory with summed momenta ``ρ`` and end velocities ``p♯ = Σp``
  continues while ``p♯₋·ρ > 0`` and ``p♯₊·ρ > 0``. It is checked on every sub-subtree of a new subtree (a U-turn
  there discards the whole subtree, and so ends the transition), on the merged trajectory (a U-turn ends the
  transition after the merge), and, as Stan does since 2.23, across the seam of every merge: the left part
  extended by the right part's first state and the right part extended by the left part's last one.
- A state with ``H − H₀ > divergence_threshold`` (or non-finite) is *divergent*: its subtree is discarded and the
  transition ends. Depth is capped at ``max_depth`` (``2^max_depth − 1`` leapfrog steps).

The resulting kernel leaves ``π(q) e^{−K(p)}`` invariant (Hoffman & Gelman 2014; Betancourt 2017): the sampled state
is drawn from the trajectory with probabilities that depend only on the set of states and the tree structure,
which are the same from every state of the trajectory. The acceptance statistic of a transition (for step-size
adaptation) is Stan's: the mean of ``min(1, e^{H₀ − H})`` over the states of the new subtrees.

Chains are batched: all chains at depth ``j`` build subtrees of the same size in lock-step, each in its own
direction with its own step size; a chain whose transition has ended is masked out, and only the chains still
building evaluate ``∇U`` (the counts are per chain). Warm-up is the one HMC uses
(:func:`canonflow.sampling.warmup.warmup_kernel`).
"""

from __future__ import annotations

import math

import torch

from canonflow.sampling.euclidean_metric import Metric, leapfrog_step
from canonflow.sampling.potential import CountingPotential, Potential
from canonflow.sampling.result import SamplingResult
from canonflow.sampling.warmup import prepare_chains, run_chains
from canonflow.validation import check_positive_int

__all__ = ["nuts"]


def _no_uturn(metric: Metric, p_a: torch.Tensor, p_b: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """Stan's criterion ``(Σp_a)·ρ > 0 and (Σp_b)·ρ > 0`` per row, ``(B,)``."""
    return ((metric.velocity(p_a) * rho).sum(-1) > 0) & ((metric.velocity(p_b) * rho).sum(-1) > 0)


def _merge_ok(
    metric: Metric,
    rho_left: torch.Tensor,
    rho_right: torch.Tensor,
    p_left_first: torch.Tensor,
    p_left_last: torch.Tensor,
    p_right_first: torch.Tensor,
    p_right_last: torch.Tensor,
) -> torch.Tensor:
    """No U-turn over two adjacent trajectories (``left`` built first) merged, nor across their seam; ``(B,)``."""
    ok = _no_uturn(metric, p_left_first, p_right_last, rho_left + rho_right)
    ok &= _no_uturn(metric, p_left_first, p_right_first, rho_left + p_right_first)
    ok &= _no_uturn(metric, p_left_last, p_right_last, rho_right + p_left_last)
    return ok


class _Kernel:
    """One NUTS transition for every chain; keeps the states ``x``, potentials ``u`` and gradients ``g``."""

    def __init__(
        self,
        potential: CountingPotential,
        x: torch.Tensor,
        u: torch.Tensor,
        g: torch.Tensor,
        threshold: float,
        max_depth: int,
    ) -> None:
        self.potential, self.x, self.u, self.g = potential, x, u, g
        self.threshold = threshold
        self.max_depth = max_depth
        self.metric = Metric(torch.ones(x.shape[1], dtype=x.dtype, device=x.device))
        self._info: dict[str, torch.Tensor] = {}

    def info(self) -> dict[str, torch.Tensor]:
        """``tree_depth`` and ``n_leapfrog`` of the last transition, ``(B,)`` each."""
        return dict(self._info)

    def transition(
        self, step_sizes: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One transition of every chain; returns ``(accept_stat, divergent, moved)``, each ``(B,)``."""
        metric, device = self.metric, self.x.device
        chains = self.x.shape[0]
        eps = step_sizes.to(device=device, dtype=self.x.dtype)
        p0 = metric.sample_momentum(chains, generator)
        h0 = self.u + metric.kinetic(p0)
        # the trajectory: its two ends (backward "minus" and forward "plus" in time), summed momenta, total weight
        q_minus = q_plus = self.x
        p_minus = p_plus = p0
        g_minus = g_plus = self.g
        rho = p0.clone()
        log_w = torch.zeros(chains, dtype=h0.dtype, device=device)
        sample_q, sample_u, sample_g = self.x, self.u, self.g
        active = torch.ones(chains, dtype=torch.bool, device=device)
        divergent = torch.zeros(chains, dtype=torch.bool, device=device)
        depth = torch.zeros(chains, dtype=torch.long, device=device)
        n_leapfrog = torch.zeros(chains, dtype=torch.long, device=device)
        sum_accept = torch.zeros(chains, dtype=h0.dtype, device=device)
        for j in range(self.max_depth):
            if not active.any():
                break
            forward = torch.rand(chains, generator=generator, dtype=torch.float64).to(device) < 0.5
            sign = torch.where(forward, 1.0, -1.0).to(eps)
            q = torch.where(forward[:, None], q_plus, q_minus)
            p = torch.where(forward[:, None], p_plus, p_minus)
            g = torch.where(forward[:, None], g_plus, g_minus)
            p_adjacent, p_far = p, torch.where(forward[:, None], p_minus, p_plus)
            sub = _Subtree(self, j, active, q, p, g, h0, sign * eps, generator)
            depth = torch.where(active, j + 1, depth)
            n_leapfrog += sub.n_leapfrog
            sum_accept += sub.sum_accept
            divergent |= sub.divergent
            merge = active & sub.ok
            # biased progressive sampling between the old trajectory and the new subtree
            uniform = torch.rand(chains, generator=generator, dtype=torch.float64).to(device)
            take = merge & (torch.log(uniform).to(log_w) < sub.log_w - log_w)
            sample_q = torch.where(take[:, None], sub.sample_q, sample_q)
            sample_u = torch.where(take, sub.sample_u, sample_u)
            sample_g = torch.where(take[:, None], sub.sample_g, sample_g)
            log_w = torch.where(merge, torch.logaddexp(log_w, sub.log_w), log_w)
            turn_ok = _merge_ok(metric, rho, sub.rho, p_far, p_adjacent, sub.p_first, sub.p_last)
            rho = torch.where(merge[:, None], rho + sub.rho, rho)
            new_plus, new_minus = merge & forward, merge & ~forward
            q_plus = torch.where(new_plus[:, None], sub.q, q_plus)
            p_plus = torch.where(new_plus[:, None], sub.p, p_plus)
            g_plus = torch.where(new_plus[:, None], sub.g, g_plus)
            q_minus = torch.where(new_minus[:, None], sub.q, q_minus)
            p_minus = torch.where(new_minus[:, None], sub.p, p_minus)
            g_minus = torch.where(new_minus[:, None], sub.g, g_minus)
            active = merge & turn_ok
        moved = ~(sample_q == self.x).all(-1)
        self.x, self.u, self.g = sample_q, sample_u, sample_g
        stat = sum_accept / n_leapfrog.clamp(min=1).to(sum_accept)
        self._info = {"tree_depth": depth.cpu(), "n_leapfrog": n_leapfrog.cpu()}
        return stat, divergent, moved


class _Subtree:
    """A subtree of ``2^depth`` leapfrog states built from ``(q, p, g)`` with signed steps ``eps`` ``(B,)`` by the
    chains in ``building``: its last state, candidate sample, summed weight and momenta, first and last momenta,
    whether it is valid (no divergence, no U-turn in any sub-subtree), and its statistics."""

    def __init__(
        self,
        kernel: _Kernel,
        depth: int,
        building: torch.Tensor,
        q: torch.Tensor,
        p: torch.Tensor,
        g: torch.Tensor,
        h0: torch.Tensor,
        eps: torch.Tensor,
        generator: torch.Generator | None,
    ) -> None:
        metric, device = kernel.metric, q.device
        chains = q.shape[0]
        self.ok = building.clone()
        self.divergent = torch.zeros(chains, dtype=torch.bool, device=device)
        self.n_leapfrog = torch.zeros(chains, dtype=torch.long, device=device)
        self.sum_accept = torch.zeros(chains, dtype=h0.dtype, device=device)
        self.log_w = torch.full((chains,), -math.inf, dtype=h0.dtype, device=device)
        self.sample_q, self.sample_u, self.sample_g = q, kernel.u, g
        self.p_first = p
        u = torch.zeros_like(h0)
        cumulative = torch.zeros_like(p)  # Σ of the momenta of the states so far
        # per level k: the first momentum of the current level-k sub-subtree and the cumulative sum before it,
        # and the last momentum of the latest completed level-k sub-subtree that was a left child
        first_p: list[torch.Tensor] = [p] * (depth + 1)
        before: list[torch.Tensor] = [cumulative] * (depth + 1)
        left_last: list[torch.Tensor] = [p] * (depth + 1)
        for leaf in range(2**depth):
            full = bool(self.ok.all())  # every chain still building: no masking needed (the common case)
            if full:
                q, p, u, g = leapfrog_step(kernel.potential, metric, q, p, g, eps)
            else:
                rows = self.ok.nonzero().flatten()
                if rows.numel() == 0:
                    break
                sub_q, sub_p, sub_u, sub_g = leapfrog_step(
                    kernel.potential, metric, q[rows], p[rows], g[rows], eps[rows]
                )
                q, p, g, u = q.clone(), p.clone(), g.clone(), u.clone()
                q[rows], p[rows], g[rows], u[rows] = sub_q, sub_p, sub_g, sub_u
            mask = self.ok[:, None]

            def pick(
                new: torch.Tensor, old: torch.Tensor, mask: torch.Tensor = mask, full: bool = full
            ) -> torch.Tensor:
                return new if full else torch.where(mask, new, old)

            self.n_leapfrog += self.ok.long()
            h = u + metric.kinetic(p)
            delta = torch.where(torch.isfinite(h), h0 - h, torch.full_like(h, -math.inf))
            finite = torch.isfinite(delta) & torch.isfinite(q).all(-1) & torch.isfinite(g).all(-1)
            bad = self.ok & (~finite | (-delta > kernel.threshold))
            self.sum_accept += torch.where(self.ok, torch.exp(delta.clamp(max=0.0)), torch.zeros_like(delta))
            self.divergent |= bad
            log_total = torch.logaddexp(self.log_w, delta)
            uniform = torch.rand(chains, generator=generator, dtype=torch.float64).to(device)
            take = self.ok & ~bad & (torch.log(uniform).to(delta) < delta - log_total)
            self.sample_q = torch.where(take[:, None], q, self.sample_q)
            self.sample_u = torch.where(take, u, self.sample_u)
            self.sample_g = torch.where(take[:, None], g, self.sample_g)
            self.log_w = torch.where(self.ok, log_total, self.log_w)
            self.ok &= ~bad
            if leaf == 0:
                self.p_first = pick(p, self.p_first)
            start_cumulative = cumulative
            cumulative = pick(cumulative + p, cumulative)
            for k in range(depth + 1):  # sub-subtrees starting at this leaf
                if leaf % 2**k == 0:
                    first_p[k] = pick(p, first_p[k])
                    before[k] = pick(start_cumulative, before[k])
            for k in range(depth + 1):  # sub-subtrees completed at this leaf, smallest first
                if (leaf + 1) % 2**k:
                    continue
                if k >= 1:
                    rho_right = cumulative - before[k - 1]
                    rho_left = before[k - 1] - before[k]
                    ok = _merge_ok(metric, rho_left, rho_right, first_p[k], left_last[k - 1], first_p[k - 1], p)
                    self.ok &= ok | ~mask[:, 0]
                if ((leaf + 1) // 2**k) % 2 == 1:
                    left_last[k] = pick(p, left_last[k])
        self.q, self.p, self.g = q, p, g
        self.p_last = p
        self.rho = cumulative


def nuts(
    potential: Potential,
    x0: torch.Tensor,
    num_samples: int,
    *,
    warmup: int = 1000,
    max_depth: int = 10,
    step_size: float | torch.Tensor | None = None,
    target_accept: float = 0.8,
    adapt_mass: bool = True,
    metric: str = "auto",
    inverse_mass: torch.Tensor | None = None,
    divergence_threshold: float = 1000.0,
    restart_stuck: bool = True,
    generator: torch.Generator | None = None,
) -> SamplingResult:
    """Run ``x0.shape[0]`` NUTS chains on ``π ∝ e^{−U}`` (module docstring) and return ``num_samples`` draws each.

    ``potential``: ``U(q) -> (B,)`` for ``q`` ``(B, d)``, differentiable by autograd; ``x0``: starts ``(chains, d)``
    with finite ``U`` and ``∇U`` (e.g. :func:`~canonflow.sampling.initial_points`, Stan's ``U(−2, 2)``).
    ``warmup``, ``step_size``, ``target_accept``, ``adapt_mass``, ``metric`` (``"auto"``/``"diag"``/``"dense"``),
    ``inverse_mass``, ``restart_stuck``: as for :func:`~canonflow.sampling.hmc` (the same warm-up; Stan's defaults:
    1000 warm-up iterations, target acceptance statistic 0.8; Stan's diagonal metric is ``metric="diag"``, the
    default ``"auto"`` is dense for ``d ≤ 50``). ``max_depth``: at most ``2^max_depth − 1`` leapfrog steps per
    transition. Returns a ``SamplingResult`` with samples
    ``(num_samples, chains, d)``, the acceptance statistics in ``accept_prob``, ``accepted`` = the chain moved,
    divergences, ``step_sizes`` per chain, the metric, gradient counts (one per leapfrog step and chain), and
    ``extra["tree_depth"]``, ``extra["n_leapfrog"]`` ``(num_samples, chains)``.
    """
    who = "nuts"
    check_positive_int(max_depth, "max_depth", who)
    setup = prepare_chains(
        who, potential, x0, num_samples, warmup, step_size, target_accept, metric, inverse_mass, divergence_threshold
    )
    kernel = _Kernel(setup.potential, setup.x0, setup.u0, setup.g0, divergence_threshold, max_depth)
    return run_chains(
        kernel,
        setup,
        num_samples,
        warmup,
        target_accept=target_accept,
        adapt_mass=adapt_mass,
        restart_stuck=restart_stuck,
        jitter=lambda eps: eps,
        generator=generator,
    )
