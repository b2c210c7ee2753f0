"""One warm-up for HMC and NUTS, as Stan's, and the chains' run after it.

*Warm-up* (:func:`warmup_kernel`): an initial fast buffer, slow windows doubling in length
(:func:`~canonflow.sampling.adaptation.adaptation_windows`) and a terminal fast buffer. Every chain adapts its own
step size by dual averaging (:class:`~canonflow.sampling.adaptation.DualAveraging`) to its own mean acceptance
statistic. At the end of each slow window the inverse mass matrix (diagonal or dense,
:class:`~canonflow.sampling.euclidean_metric.Metric`) is re-estimated from the window's draws of the *healthy*
chains only, regularized as Stan does (``Σ = n/(n + 5) Σ̂ + 10⁻³ · 5/(n + 5) I``, ``n`` the window length). A chain is
*stuck* in a window when it moved in fewer than ``5 %`` of its transitions or its mean potential lies more than
``stuck_nats`` above the median chain's (a region of negligible mass); stuck chains are excluded from the
estimate and restarted at the current state (and step-size state) of a randomly chosen healthy chain. This changes
only the discarded warm-up: after it, every chain runs the same exact kernel. The restarted chains are reported.
:func:`prepare_chains` checks a sampler's arguments and starts its chains; :func:`run_chains` runs warm-up and
sampling and returns the ``SamplingResult``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from canonflow.sampling.adaptation import DualAveraging, adaptation_windows
from canonflow.sampling.euclidean_metric import Metric, dense_metric, leapfrog_step
from canonflow.sampling.potential import CountingPotential, Potential, check_initial
from canonflow.sampling.result import SamplingResult
from canonflow.validation import check_non_negative_int, check_positive_int

__all__ = [
    "WarmupReport",
    "warmup_kernel",
    "initial_step_size",
    "ChainSetup",
    "prepare_chains",
    "run_chains",
]

logger = logging.getLogger(__name__)


@dataclass
class WarmupReport:
    """What warm-up did: per-chain final ``step_sizes`` ``(chains,)``, the ``metric``, the chains found stuck
    (``stuck``: one list per check, in order; restarted unless ``restart_stuck=False``), the number of
    ``divergences`` during warm-up, and
    ``terminal_accept``, the mean acceptance statistic over the terminal fast buffer (the iterations after the last
    metric update), which dual averaging drives to the target. The averaged ``ε̄`` it returns is smaller than the
    iterates' typical ``ε_t`` when the per-chain statistic is noisy, so sampling realizes a somewhat higher
    acceptance than the target (as in Stan)."""

    step_sizes: torch.Tensor
    metric: Metric
    stuck: list[list[int]] = field(default_factory=list)
    divergences: int = 0
    terminal_accept: float = math.nan


class Kernel:
    """What :func:`warmup_kernel` needs of a sampler: the states ``x`` ``(B, d)``, ``u`` ``(B,)``, ``g`` ``(B, d)``,
    the ``metric``, ``potential`` (a ``CountingPotential``) and ``transition(step_sizes, generator) ->
    (accept_stat, divergent, moved)``, each ``(B,)``."""

    x: torch.Tensor
    u: torch.Tensor
    g: torch.Tensor
    metric: Metric
    potential: CountingPotential
    transition: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def initial_step_size(kernel: Kernel, step_sizes: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Stan's heuristic per chain: from ``step_sizes`` ``(B,)``, double (or halve) ``ε`` until the acceptance
    ``e^{−ΔH}`` of one leapfrog step from fresh momenta crosses ``0.8``; states are unchanged."""
    eps = step_sizes.clone().double()
    q, u, g = kernel.x, kernel.u, kernel.g
    direction = torch.zeros_like(eps)
    done = torch.zeros(eps.shape, dtype=torch.bool)
    for _ in range(60):
        p = kernel.metric.sample_momentum(q.shape[0], generator)
        h0 = u + kernel.metric.kinetic(p)
        q1, p1, u1, _ = leapfrog_step(kernel.potential, kernel.metric, q, p, g, eps)
        delta = (h0 - u1 - kernel.metric.kinetic(p1)).double().cpu()  # log acceptance
        delta = torch.nan_to_num(delta, nan=-math.inf)
        up = delta > math.log(0.8)
        direction = torch.where(direction == 0, torch.where(up, 1.0, -1.0), direction).double()
        done = done | ((direction > 0) & ~up) | ((direction < 0) & up)
        if done.all():
            break
        eps = torch.where(done, eps, torch.where(direction > 0, eps * 2.0, eps / 2.0))
        eps = eps.clamp(1e-10, 1e5)
    return eps


def warmup_kernel(
    kernel: Kernel,
    warmup: int,
    step_sizes: torch.Tensor,
    *,
    target_accept: float,
    adapt_mass: bool,
    dense: bool,
    generator: torch.Generator | None,
    jitter: Callable[[torch.Tensor], torch.Tensor] = lambda eps: eps,
    stuck_nats: float = 25.0,
    restart_stuck: bool = True,
    gamma: float = 0.05,
) -> WarmupReport:
    """Stan's windowed warm-up of ``kernel`` for ``warmup`` iterations, with per-chain step sizes and stuck-chain
    handling (module docstring). ``step_sizes`` ``(B,)``: the initial step sizes (refined by
    :func:`initial_step_size`); ``jitter``: maps step sizes to the ones used in a transition. Returns the
    :class:`WarmupReport`; the kernel is left at its last warm-up state with the adapted metric."""
    chains = kernel.x.shape[0]
    eps = initial_step_size(kernel, step_sizes, generator)
    adapter = DualAveraging(eps, target_accept, gamma=gamma)
    windows = adaptation_windows(warmup) if adapt_mass else []
    ends = {end: start for start, end in windows}
    first_start = windows[0][0] if windows else None
    report = WarmupReport(eps, kernel.metric)
    segment_x: list[torch.Tensor] = []
    segment_u: list[torch.Tensor] = []
    segment_moved: list[torch.Tensor] = []
    terminal: list[torch.Tensor] = []
    for it in range(warmup):
        if it == first_start:  # the initial fast buffer: only restart stuck chains
            _restart_stuck(kernel, adapter, segment_u, segment_moved, stuck_nats, restart_stuck, report, generator)
            segment_x, segment_u, segment_moved = [], [], []
        stat, divergent, moved = kernel.transition(jitter(eps), generator)
        report.divergences += int(divergent.sum())
        stat = torch.nan_to_num(stat.double().cpu(), nan=0.0)
        eps = adapter.update(stat)
        terminal.append(stat)
        segment_x.append(kernel.x)
        segment_u.append(kernel.u)
        segment_moved.append(moved)
        if it + 1 in ends:
            healthy = _restart_stuck(
                kernel, adapter, segment_u, segment_moved, stuck_nats, restart_stuck, report, generator
            )
            draws = torch.stack(segment_x)[:, healthy].reshape(-1, kernel.x.shape[1])
            kernel.metric = Metric.estimate(draws, dense, it + 1 - ends[it + 1])
            segment_x, segment_u, segment_moved, terminal = [], [], [], []
            eps = initial_step_size(kernel, adapter.final_step_size, generator)
            adapter.restart(eps)
    if warmup > 0:
        eps = adapter.final_step_size
    report.step_sizes = eps if isinstance(eps, torch.Tensor) else torch.full((chains,), eps, dtype=torch.float64)
    report.metric = kernel.metric
    if terminal:
        report.terminal_accept = float(torch.stack(terminal).mean())
    return report


def _restart_stuck(
    kernel: Kernel,
    adapter: DualAveraging,
    segment_u: list[torch.Tensor],
    segment_moved: list[torch.Tensor],
    stuck_nats: float,
    restart: bool,
    report: WarmupReport,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Find the stuck chains of a segment, restart them at healthy chains' states; return the healthy mask."""
    chains = kernel.x.shape[0]
    if not segment_u:
        return torch.ones(chains, dtype=torch.bool)
    moved = torch.stack(segment_moved).double().mean(0).cpu()
    mean_u = torch.stack(segment_u).double().mean(0).cpu()
    mean_u = torch.nan_to_num(mean_u, nan=math.inf)
    stuck = (moved < 0.05) | (mean_u > mean_u.median() + stuck_nats)
    healthy = ~stuck
    if not stuck.any():
        return healthy
    if not healthy.any():
        logger.warning("warm-up: every chain is stuck (moved in < 5%% of transitions); nothing to restart from")
        return torch.ones(chains, dtype=torch.bool)
    bad = stuck.nonzero().flatten()
    good = healthy.nonzero().flatten()
    report.stuck.append(bad.tolist())
    logger.info("warm-up: chains %s are stuck", bad.tolist())
    if restart:
        pick = good[torch.randint(len(good), (len(bad),), generator=generator)]
        device = kernel.x.device
        kernel.x = kernel.x.clone()
        kernel.u = kernel.u.clone()
        kernel.g = kernel.g.clone()
        kernel.x[bad.to(device)] = kernel.x[pick.to(device)]
        kernel.u[bad.to(device)] = kernel.u[pick.to(device)]
        kernel.g[bad.to(device)] = kernel.g[pick.to(device)]
        adapter.copy_chains(bad, pick)
    return healthy


@dataclass
class ChainSetup:
    """Checked inputs of a run: the counted ``potential``, starts ``x0`` ``(B, d)`` with ``u0``, ``g0``, the initial
    ``step_sizes`` ``(B,)`` (``None``: search), the initial ``metric`` and whether it is ``dense``."""

    potential: CountingPotential
    x0: torch.Tensor
    u0: torch.Tensor
    g0: torch.Tensor
    step_sizes: torch.Tensor | None
    metric: Metric
    dense: bool
    started: float


def prepare_chains(
    who: str,
    potential: Potential,
    x0: torch.Tensor,
    num_samples: int,
    warmup: int,
    step_size: float | torch.Tensor | None,
    target_accept: float,
    metric: str,
    inverse_mass: torch.Tensor | None,
    divergence_threshold: float,
) -> ChainSetup:
    """Check the common arguments of ``hmc`` and ``nuts`` (errors name ``who``) and evaluate ``U``, ``∇U`` at
    ``x0``; see :func:`canonflow.sampling.hmc` for their meaning."""
    check_positive_int(num_samples, "num_samples", who)
    check_non_negative_int(warmup, "warmup", who)
    if not 0 < target_accept < 1:
        raise ValueError(f"{who}: expected 0 < target_accept < 1, got {target_accept}")
    if not (isinstance(divergence_threshold, (int, float)) and divergence_threshold > 0):
        raise ValueError(f"{who}: expected a positive divergence_threshold, got {divergence_threshold!r}")
    if warmup == 0 and step_size is None:
        raise ValueError(f"{who}: without warm-up (warmup=0) a step_size must be given")
    counted = CountingPotential(potential, x0.shape[-1] if isinstance(x0, torch.Tensor) else 0, who)
    started = time.perf_counter()
    u0, g0 = check_initial(x0, counted, who)
    x0 = x0.detach()
    chains, dim = x0.shape
    dense = dense_metric(metric, dim, who)
    eps = None
    if step_size is not None:
        eps = torch.as_tensor(step_size, dtype=torch.float64).detach().cpu()
        if eps.dim() == 0:
            eps = eps.expand(chains).clone()
        if eps.shape != (chains,) or not (torch.isfinite(eps).all() and (eps > 0).all()):
            raise ValueError(f"{who}: expected a positive finite step_size (a float or one per chain), got {step_size}")
    if inverse_mass is None:
        initial = Metric(torch.ones(dim, dtype=x0.dtype, device=x0.device))
    else:
        if not isinstance(inverse_mass, torch.Tensor) or inverse_mass.shape not in ((dim,), (dim, dim)):
            raise ValueError(f"{who}: expected an inverse_mass of shape ({dim},) or ({dim}, {dim})")
        try:
            initial = Metric(inverse_mass.detach().to(x0))
        except ValueError as error:
            raise ValueError(f"{who}: {error}") from error
    return ChainSetup(counted, x0, u0, g0, eps, initial, dense, started)


def run_chains(
    kernel: Kernel,
    setup: ChainSetup,
    num_samples: int,
    warmup: int,
    *,
    target_accept: float,
    adapt_mass: bool,
    restart_stuck: bool,
    jitter: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator | None,
    num_steps: int | None = None,
) -> SamplingResult:
    """Warm ``kernel`` up (:func:`warmup_kernel`) and draw ``num_samples`` transitions of every chain; a
    ``SamplingResult`` with evaluation counts and timings of both phases. A kernel with an ``info()`` method
    (``dict`` of ``(B,)`` tensors per transition) has them stacked into ``extra``."""
    counted = setup.potential
    kernel.metric = setup.metric
    chains = setup.x0.shape[0]
    if warmup > 0:
        start = setup.step_sizes if setup.step_sizes is not None else torch.full((chains,), 0.1, dtype=torch.float64)
        report = warmup_kernel(
            kernel,
            warmup,
            start,
            target_accept=target_accept,
            adapt_mass=adapt_mass,
            dense=setup.dense,
            generator=generator,
            jitter=jitter,
            restart_stuck=restart_stuck,
        )
    else:
        report = WarmupReport(setup.step_sizes, setup.metric)
    step_sizes = report.step_sizes
    warmup_gradients, warmup_potentials = counted.gradient_evaluations, counted.potential_evaluations
    warmup_seconds = time.perf_counter() - setup.started
    began = time.perf_counter()
    samples, probs, moves, divergents = [], [], [], []
    infos: dict[str, list[torch.Tensor]] = {}
    for _ in range(num_samples):
        stat, divergent, moved = kernel.transition(jitter(step_sizes), generator)
        samples.append(kernel.x)
        probs.append(stat)
        moves.append(moved)
        divergents.append(divergent)
        for key, value in (kernel.info() if hasattr(kernel, "info") else {}).items():
            infos.setdefault(key, []).append(value)
    moved_fraction = torch.stack(moves).double().mean(0).cpu()
    stuck_after = (moved_fraction < 0.05).nonzero().flatten().tolist()
    if stuck_after:
        logger.warning("chains %s moved in fewer than 5%% of their transitions after warm-up", stuck_after)
    extra = {key: torch.stack(value) for key, value in infos.items()}
    extra |= {"stuck_chains": report.stuck, "stuck_after_warmup": stuck_after}
    extra["warmup_accept"] = report.terminal_accept
    metric = kernel.metric.inverse_mass
    return SamplingResult(
        samples=torch.stack(samples),
        accept_prob=torch.stack(probs),
        accepted=torch.stack(moves),
        divergent=torch.stack(divergents),
        warmup_divergences=report.divergences,
        step_size=float(step_sizes.median()),
        step_sizes=step_sizes,
        inverse_mass=metric,
        num_steps=num_steps,
        gradient_evaluations=counted.gradient_evaluations - warmup_gradients,
        potential_evaluations=counted.potential_evaluations - warmup_potentials,
        warmup_gradient_evaluations=warmup_gradients,
        warmup_potential_evaluations=warmup_potentials,
        seconds=time.perf_counter() - began,
        warmup_seconds=warmup_seconds,
        extra=extra,
    )
