"""Hamiltonian Monte Carlo for many chains at once, with Stan-style warm-up.

To sample ``π(q) ∝ e^{−U(q)}`` on ``ℝ^d``, HMC extends it with momenta ``p ~ N(0, M)`` to the joint density
``e^{−H(q, p)}``, ``H = U(q) + pᵀM⁻¹p/2``, and in each transition draws fresh momenta, integrates Hamilton's
equations with ``L`` leapfrog steps of size ``ε`` (``canonflow.integrators.leapfrog``) and accepts the end
point with probability ``min(1, e^{−ΔH})``. Leapfrog is symplectic (volume-preserving) and time-reversible,
so this Metropolis–Hastings correction makes the chain exactly ``π``-invariant whatever ``ε``.

Warm-up (discarded) adapts the kernel, as Stan does:

- *step size* by dual averaging (Hoffman & Gelman 2014, Alg. 5): with ``α_t`` the mean acceptance
  probability over chains, ``H̄_t = (1 − 1/(t + t₀)) H̄_{t−1} + (δ − α_t)/(t + t₀)``,
  ``log ε_t = μ − √t H̄_t/γ``, ``log ε̄_t = t^{−κ} log ε_t + (1 − t^{−κ}) log ε̄_{t−1}`` with ``μ = log 10ε₀``,
  ``γ = 0.1`` (Stan: 0.05; the chain-averaged ``α_t`` is less noisy, and smaller swings of ``ε_t`` keep ``ε̄``
  from undershooting), ``t₀ = 10``, ``κ = 0.75`` and target acceptance ``δ`` (0.8); sampling uses ``ε̄``;
- *diagonal inverse mass matrix* ``M⁻¹ = diag Var(q)`` estimated from all chains in doubling windows (an
  initial buffer of 15 % of warm-up and a final buffer of at least 10 %, see ``adaptation_windows``), shrunk
  towards ``10⁻³`` as in Stan; dual averaging restarts after each window.

One step size (jittered uniformly by ``±jitter`` per transition) and one mass matrix are shared by all
chains. A transition whose energy error ``ΔH`` exceeds ``divergence_threshold`` or is not finite (e.g. the
potential returned NaN) is *divergent*: it is rejected and reported in ``SamplingResult.divergent``.
"""

from __future__ import annotations

import math
import time

import torch

from canonflow.integrators import leapfrog
from canonflow.sampling.potential import CountingPotential, Potential, check_initial
from canonflow.sampling.result import SamplingResult
from canonflow.validation import check_non_negative_int, check_positive_int

__all__ = ["hmc", "DualAveraging", "adaptation_windows"]


class DualAveraging:
    """Nesterov dual averaging of ``log ε`` towards mean acceptance ``target`` (Hoffman & Gelman 2014)."""

    def __init__(self, step_size: float, target: float, gamma: float = 0.1, t0: float = 10.0, kappa: float = 0.75):
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.restart(step_size)

    def restart(self, step_size: float) -> None:
        """Restart from ``ε₀ = step_size`` (``μ = log 10ε₀``)."""
        self.mu = math.log(10 * step_size)
        self.t = 0
        self.h_bar = 0.0
        self.log_step = math.log(step_size)
        self.log_step_bar = 0.0

    def update(self, accept_prob: float) -> float:
        """Record one mean acceptance probability; return the next step size ``ε_t``."""
        self.t += 1
        weight = 1.0 / (self.t + self.t0)
        self.h_bar = (1 - weight) * self.h_bar + weight * (self.target - accept_prob)
        self.log_step = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t**-self.kappa
        self.log_step_bar = eta * self.log_step + (1 - eta) * self.log_step_bar
        return math.exp(self.log_step)

    @property
    def final_step_size(self) -> float:
        """The averaged step size ``ε̄`` used after warm-up."""
        return math.exp(self.log_step_bar)


def adaptation_windows(warmup: int) -> list[tuple[int, int]]:
    """Slow (mass-matrix) windows ``[(start, end), ...]`` of a warm-up of ``warmup`` iterations.

    Initial buffer ``0.15·warmup``, final buffer ``max(0.1·warmup, min(50, warmup/4))``, windows of
    ``max(warmup/40, 5)`` iterations doubling in length; the last window stretches to the final buffer.
    Empty when ``warmup < 40``.
    """
    if warmup < 40:
        return []
    start, end_slow = int(0.15 * warmup), warmup - max(int(0.1 * warmup), min(50, warmup // 4))
    size = max(warmup // 40, 5)
    windows = []
    while start < end_slow:
        end = start + size
        if end + 2 * size > end_slow:
            end = end_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


class _Hamiltonian:
    """``H(q, p) = U(q) + Σ M⁻¹ p²/2`` for ``canonflow.integrators.leapfrog``, with an analytic ``gradient``."""

    separable = True

    def __init__(self, potential: CountingPotential, inverse_mass: torch.Tensor) -> None:
        self.potential = potential
        self.inverse_mass = inverse_mass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1] // 2
        u, _ = self.potential.value_and_grad(x[:, :d])
        return u + 0.5 * (self.inverse_mass * x[:, d:] ** 2).sum(-1)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1] // 2
        _, g = self.potential.value_and_grad(x[:, :d])
        return torch.cat([g, self.inverse_mass * x[:, d:]], dim=-1)


class _Kernel:
    """One HMC transition for all chains; keeps the current states, potentials and gradients."""

    def __init__(self, potential: CountingPotential, x: torch.Tensor, u: torch.Tensor, g: torch.Tensor, threshold):
        self.potential, self.x, self.u, self.g = potential, x, u, g
        self.threshold = threshold
        self.inverse_mass = torch.ones(x.shape[1], dtype=x.dtype)

    def transition(self, step_size: float, steps: int, generator: torch.Generator | None):
        x, dtype = self.x, self.x.dtype
        p = torch.randn(x.shape, generator=generator, dtype=dtype) / self.inverse_mass.sqrt()
        hamiltonian = _Hamiltonian(self.potential, self.inverse_mass)
        h0 = self.u + 0.5 * (self.inverse_mass * p**2).sum(-1)
        self.potential.remember(x, self.u, self.g)
        with torch.no_grad():
            end = leapfrog(hamiltonian, torch.cat([x, p], -1), step_size, steps)
        d = x.shape[1]
        q_new, p_new = end[:, :d], end[:, d:]
        u_new, g_new = self.potential.value_and_grad(q_new)
        delta = u_new + 0.5 * (self.inverse_mass * p_new**2).sum(-1) - h0
        finite = torch.isfinite(delta) & torch.isfinite(q_new).all(-1) & torch.isfinite(g_new).all(-1)
        divergent = ~finite | (delta > self.threshold)
        accept_prob = torch.where(divergent, torch.zeros_like(delta), torch.exp(torch.clamp(-delta, max=0.0)))
        accept_prob = torch.nan_to_num(accept_prob, nan=0.0)
        accepted = torch.rand(delta.shape, generator=generator, dtype=dtype) < accept_prob
        keep = accepted[:, None]
        self.x = torch.where(keep, q_new, x)
        self.u = torch.where(accepted, u_new, self.u)
        self.g = torch.where(keep, g_new, self.g)
        return accept_prob, accepted, divergent


def _initial_step_size(kernel: _Kernel, step_size: float, generator: torch.Generator | None) -> float:
    """Double or halve ``ε`` until one leapfrog step's mean acceptance probability crosses 0.5 (states unchanged)."""
    state = (kernel.x, kernel.u, kernel.g)
    direction = 0
    for _ in range(30):
        prob, _, _ = kernel.transition(step_size, 1, generator)
        kernel.x, kernel.u, kernel.g = state
        up = float(prob.mean()) > 0.5
        if direction == 0:
            direction = 1 if up else -1
        elif (direction == 1) != up:
            break
        step_size = step_size * 2.0 if direction == 1 else step_size / 2.0
    return step_size


def hmc(
    potential: Potential,
    x0: torch.Tensor,
    num_samples: int,
    *,
    warmup: int = 500,
    num_steps: int = 10,
    step_size: float | None = None,
    target_accept: float = 0.8,
    adapt_mass: bool = True,
    inverse_mass: torch.Tensor | None = None,
    jitter: float = 0.3,
    divergence_threshold: float = 1000.0,
    generator: torch.Generator | None = None,
) -> SamplingResult:
    """Run ``x0.shape[0]`` HMC chains on ``π ∝ e^{−U}`` and return ``num_samples`` draws per chain.

    ``potential``: ``U(q) -> (B,)`` for ``q`` of shape ``(B, d)``, differentiable by autograd; ``x0``: starting
    states ``(chains, d)`` where ``U`` and ``∇U`` are finite. ``warmup`` iterations (``0``: no adaptation,
    ``step_size`` required) adapt the step size to mean acceptance ``target_accept`` and, if ``adapt_mass``,
    the diagonal inverse mass matrix (initial value ``inverse_mass``, default ``I``). ``step_size=None`` finds
    an initial step size heuristically. Each transition runs ``num_steps`` leapfrog steps of size
    ``ε·U(1 − jitter, 1 + jitter)``. Returns a ``SamplingResult`` with samples ``(num_samples, chains, d)``,
    acceptance probabilities, divergences, the adapted step size and mass, and per-chain gradient counts
    (``num_steps`` per transition).
    """
    who = "hmc"
    check_positive_int(num_samples, "num_samples", who)
    check_positive_int(num_steps, "num_steps", who)
    check_non_negative_int(warmup, "warmup", who)
    if not 0 < target_accept < 1:
        raise ValueError(f"{who}: expected 0 < target_accept < 1, got {target_accept}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"{who}: expected a positive finite step_size, got {step_size}")
    if warmup == 0 and step_size is None:
        raise ValueError(f"{who}: without warm-up (warmup=0) a step_size must be given")
    if not 0 <= jitter < 1:
        raise ValueError(f"{who}: expected 0 <= jitter < 1, got {jitter}")
    counted = CountingPotential(potential, x0.shape[-1] if isinstance(x0, torch.Tensor) else 0, who)
    started = time.perf_counter()
    u0, g0 = check_initial(x0, counted, who)
    x0 = x0.detach()
    kernel = _Kernel(counted, x0, u0, g0, divergence_threshold)
    if inverse_mass is not None:
        if inverse_mass.shape != (x0.shape[1],) or not (inverse_mass > 0).all():
            raise ValueError(f"{who}: expected a positive inverse_mass of shape ({x0.shape[1]},)")
        kernel.inverse_mass = inverse_mass.to(x0)
    if step_size is None:
        step_size = _initial_step_size(kernel, 0.1, generator)

    def jittered(eps: float) -> float:
        if jitter == 0:
            return eps
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        return eps * (1 + jitter * (2 * u - 1))

    adapter = DualAveraging(step_size, target_accept)
    windows = {end: start for start, end in (adaptation_windows(warmup) if adapt_mass else [])}
    window_draws: list[torch.Tensor] = []
    warmup_divergences = 0
    starts = set(windows.values())
    collecting = False
    for it in range(warmup):
        if it in starts:
            collecting, window_draws = True, []
        prob, _, divergent = kernel.transition(jittered(step_size), num_steps, generator)
        warmup_divergences += int(divergent.sum())
        step_size = adapter.update(float(prob.mean()))
        if collecting:
            window_draws.append(kernel.x)
        if it + 1 in windows:
            draws = torch.cat(window_draws)
            count = draws.shape[0]
            variance = draws.var(0)
            kernel.inverse_mass = (count / (count + 5.0)) * variance + 1e-3 * (5.0 / (count + 5.0))
            collecting = False
            step_size = _initial_step_size(kernel, adapter.final_step_size if adapter.t else step_size, generator)
            adapter.restart(step_size)
    if warmup > 0:
        step_size = adapter.final_step_size
    warmup_gradients, warmup_potentials = counted.gradient_evaluations, counted.potential_evaluations
    warmup_seconds = time.perf_counter() - started
    began = time.perf_counter()
    samples, probs, accepts, divergents = [], [], [], []
    for _ in range(num_samples):
        prob, accepted, divergent = kernel.transition(jittered(step_size), num_steps, generator)
        samples.append(kernel.x)
        probs.append(prob)
        accepts.append(accepted)
        divergents.append(divergent)
    return SamplingResult(
        samples=torch.stack(samples),
        accept_prob=torch.stack(probs),
        accepted=torch.stack(accepts),
        divergent=torch.stack(divergents),
        warmup_divergences=warmup_divergences,
        step_size=step_size,
        inverse_mass=kernel.inverse_mass,
        num_steps=num_steps,
        gradient_evaluations=counted.gradient_evaluations - warmup_gradients,
        potential_evaluations=counted.potential_evaluations - warmup_potentials,
        warmup_gradient_evaluations=warmup_gradients,
        warmup_potential_evaluations=warmup_potentials,
        seconds=time.perf_counter() - began,
        warmup_seconds=warmup_seconds,
    )
