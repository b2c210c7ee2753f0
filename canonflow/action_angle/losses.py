"""The losses of action-angle learning, as composable :class:`~canonflow.losses.Loss` values.

A model ``T⁻¹: x = (q, p) ↦ z = (q̂, p̂)`` is read in Cartesian action-angle form, ``I_k = r_k/2`` with
``r_k = q̂_k² + p̂_k²`` and ``φ_k = atan2(p̂_k, q̂_k)``. Every loss here vanishes on an exact action-angle map and is
invariant under a rescaling of phase space, so shrinking the latent cannot lower it:

* :class:`TrajectoryLoss` (needs sampled trajectories, not ``H``): the circle loss, the variance of each ``r_k``
  along each trajectory, normalized. What the reference runs use.
* :class:`AngleLoss` (trajectories): the non-uniformity of the angular velocities; rules out static angles.
* :class:`HamiltonianLoss` (needs ``H``, no trajectories): the angle dependence of ``K = H ∘ T`` on sampled
  tori. Use it when ``H`` is known and finite wherever ``T`` sends the tori.
* :class:`NormalFormLoss` (needs ``H`` and the action Hamiltonian ``K(I)``): the misfit of ``H(x) = K(I(x))``;
  pins the frequencies to ``−∂K/∂I`` and has no static-angle minima.
* :class:`ActionLoss` (needs the exact actions ``A(x)``): the relative misfit of the learned actions; fixes
  which chart is learned on resonant systems.

Compose them: ``TrajectoryLoss() + 0.1 * HamiltonianLoss(H)``. Each is called as ``loss(model, batch)`` with a
:class:`TrajectoryBatch` or a plain tensor of trajectories ``(B, T, 2n)`` (or points ``(B, 2n)``, read as
trajectories of one sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from canonflow.losses import Loss
from canonflow.phase_space import join, split
from canonflow.validation import check_choice, check_non_negative_float, check_positive_int, validation

if TYPE_CHECKING:
    from canonflow.action_angle.model import ActionAngleFlow

__all__ = [
    "NORMALIZATIONS",
    "TrajectoryBatch",
    "ActionAngleLoss",
    "TrajectoryLoss",
    "AngleLoss",
    "HamiltonianLoss",
    "NormalFormLoss",
    "ActionLoss",
    "make_loss",
]

NORMALIZATIONS = ("spread", "mean", "across")
"""The normalizations of :class:`TrajectoryLoss`."""

Function = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrajectoryBatch:
    """A minibatch of the action-angle losses.

    ``states``: trajectories ``(B, T, 2n)``; ``steps``: their time steps ``Δt (T − 1,)`` (``None``: uniform);
    ``generator``: the randomness of losses that sample (:class:`HamiltonianLoss`); with ``None`` they draw from
    ``torch.Generator().manual_seed(seed)`` on every call, so the loss is a deterministic function of the model
    (for validation and L-BFGS).
    """

    states: torch.Tensor
    steps: torch.Tensor | None = None
    generator: torch.Generator | None = None
    seed: int = 0

    @classmethod
    def of(cls, batch: TrajectoryBatch | torch.Tensor) -> TrajectoryBatch:
        """``batch`` itself, or a tensor ``(B, T, 2n)`` (or points ``(B, 2n)``, as ``T = 1``) wrapped."""
        if isinstance(batch, TrajectoryBatch):
            return batch
        if not isinstance(batch, torch.Tensor) or batch.dim() not in (2, 3):
            raise TypeError(f"TrajectoryBatch: expected trajectories (B, T, 2n) or points (B, 2n), got {batch!r}")
        return cls(batch if batch.dim() == 3 else batch.unsqueeze(1))

    def draw(self) -> torch.Generator:
        """The generator that sampling losses draw from (see the class docstring)."""
        return self.generator if self.generator is not None else torch.Generator().manual_seed(self.seed)


class ActionAngleLoss(Loss):
    """A term of the action-angle losses; ``needs_time``: it reads the time axis of the batch (``T >= 2``)."""

    needs_time: bool = False


class TrajectoryLoss(ActionAngleLoss):
    """The circle loss: how much each latent radius ``r_k = q̂_k² + p̂_k²`` varies along each trajectory.

    For trajectories ``b = 1..B`` of ``T`` samples, ``v_bk = Var_t r_k(b, t)`` and ``m_bk = mean_t r_k(b, t)``:

    * ``"spread"`` (default): ``mean_{b,k} v_bk / s_bk²`` with ``s_bk = Var_t q̂_k + Var_t p̂_k`` the spread of the
      latent curve in plane ``k``. Scale invariant, and it punishes latent curves that sit away from the origin:
      a small blob of size ``δ`` at distance ``c`` costs about ``4c²/δ²``, so the loss cannot be lowered by
      pushing orbits away from the origin or squeezing them into short static arcs (the failure modes of the
      other two normalizations on the Kepler family); a centred circle costs 0.
    * ``"mean"``: ``mean_{b,k} v_bk / m_bk²``, the squared relative fluctuation of each action (the square of the
      action-conservation metric). Scale invariant, but a latent translation lowers it, and on the Kepler family
      training drifts that way: orbits end as small blobs away from the origin, angles static.
    * ``"across"``: ``(1/n) Σ_k mean_b v_bk / Var_b m_bk``, the within-trajectory variance relative to the spread
      of the actions across the batch (needs ``B ≥ 2``; invariant under rescaling and translation). On the Kepler
      family it drifts to maps that squeeze each orbit into a short arc, with static angles.

    ``"spread"`` and ``"mean"`` are means over trajectories (separable); ``"across"`` is not.
    """

    needs_time = True

    def __init__(self, normalization: str = "spread") -> None:
        self.normalization = check_choice(normalization, NORMALIZATIONS, "normalization", "TrajectoryLoss")

    @property
    def separable(self) -> bool:  # type: ignore[override]
        """``"spread"`` and ``"mean"`` are means over trajectories; ``"across"`` compares them."""
        return self.normalization != "across"

    def __call__(self, model: ActionAngleFlow, batch: TrajectoryBatch | torch.Tensor) -> torch.Tensor:
        q, p = split(model(TrajectoryBatch.of(batch).states))
        radii = q * q + p * p
        tiny = torch.finfo(radii.dtype).tiny
        within = radii.var(dim=1, unbiased=False)
        mean = radii.mean(dim=1)
        if self.normalization == "spread":
            spread = q.var(dim=1, unbiased=False) + p.var(dim=1, unbiased=False)
            return (within / (spread * spread).clamp_min(tiny)).mean()
        if self.normalization == "across":
            return (within.mean(0) / mean.var(dim=0, unbiased=False).clamp_min(tiny)).mean()
        return (within / (mean * mean).clamp_min(tiny)).mean()


class AngleLoss(ActionAngleLoss):
    """How far the latent angles are from turning uniformly: ``mean_{b,k} Var_t ω_bkt / (mean_t ω_bkt)²``.

    ``ω_bkt = Δφ_bkt/Δt_t`` are the angular velocities between consecutive samples of the batch's trajectories
    (``Δt`` its ``steps``; uniform spacing when ``None``), with ``Δφ`` the signed angle between consecutive latent
    points in each plane (``atan2`` of their cross and dot products, so samples must be dense enough that
    ``|Δφ| < π``). On exact action-angle coordinates it vanishes (Liouville–Arnold: ``φ̇ = −∂K/∂I`` is constant).
    It complements :class:`TrajectoryLoss`, whose minimizers can be approached by maps that squeeze each orbit
    into a short, nearly static arc: such arcs have ``mean_t ω → 0`` and a large angle loss. Not suitable when
    some true frequency is zero. Separable.
    """

    needs_time = True
    separable = True

    def __call__(self, model: ActionAngleFlow, batch: TrajectoryBatch | torch.Tensor) -> torch.Tensor:
        batch = TrajectoryBatch.of(batch)
        q, p = split(model(batch.states))
        cross = q[:, :-1] * p[:, 1:] - p[:, :-1] * q[:, 1:]
        dot = q[:, :-1] * q[:, 1:] + p[:, :-1] * p[:, 1:]
        velocity = torch.atan2(cross, dot)
        if batch.steps is not None:
            velocity = velocity / batch.steps.reshape(1, -1, 1)
        mean = velocity.mean(dim=1)
        return (velocity.var(dim=1, unbiased=False) / (mean * mean).clamp_min(torch.finfo(mean.dtype).tiny)).mean()


class HamiltonianLoss(ActionAngleLoss):
    """The angle dependence of ``K = H ∘ T`` on one torus per trajectory of the batch.

    Each trajectory ``b`` gives the torus ``I_b`` of its mean latent actions over the ``T`` samples (detached: the
    term shapes the map on each torus, not the choice of tori); on it ``num_angles`` angle vectors
    ``φ_bm ~ U[0, 2π)ⁿ`` are drawn (from the batch's generator) and, with ``K_bm = H(T(I_b, φ_bm))``, the loss is
    ``mean_b Var_m K_bm / Var_b mean_m K_bm``: zero exactly when ``K`` is independent of ``φ`` on every torus,
    and invariant under rescaling ``H``. The circle loss alone is also minimized by maps that squeeze each orbit
    onto an arc of a centred circle traversed back and forth; ``K`` is constant on such an arc but not on the
    rest of its circle, so this term rules those out. Any strictly monotone function of ``H`` serves as well;
    for an ``H > 0`` singular somewhere (Calogero–Moser at collisions) ``log H`` keeps sampled points near the
    singularity from dominating. On points ``(B, 2n)`` each point's actions give its torus.

    Args:
        hamiltonian: ``H: (B, 2n) -> (B,)``, finite wherever ``T`` sends the sampled tori.
        num_angles: angle vectors per torus, at least 2.
    """

    def __init__(self, hamiltonian: Function, num_angles: int = 32) -> None:
        who = "HamiltonianLoss"
        if not callable(hamiltonian):
            raise TypeError(f"{who}: expected a callable hamiltonian (B, 2n) -> (B,), got {hamiltonian!r}")
        if check_positive_int(num_angles, "num_angles", who) < 2:
            raise ValueError(f"{who}: num_angles must be at least 2, got {num_angles}")
        self.hamiltonian, self.num_angles = hamiltonian, num_angles

    def __call__(self, model: ActionAngleFlow, batch: TrajectoryBatch | torch.Tensor) -> torch.Tensor:
        batch = TrajectoryBatch.of(batch)
        states = batch.states
        with torch.no_grad():
            tori = 0.5 * model.radii(states).mean(dim=1)
        shape = (len(states), self.num_angles, model.n)
        angles = 2 * math.pi * torch.rand(shape, generator=batch.draw(), dtype=states.dtype).to(states.device)
        radius = torch.sqrt(2 * tori).unsqueeze(1).expand_as(angles)
        x = model.inverse(join(radius * torch.cos(angles), radius * torch.sin(angles)))
        with validation(False):
            energy = self.hamiltonian(x.reshape(-1, x.shape[-1])).reshape(angles.shape[:2])
        spread = energy.mean(1).var(unbiased=False).clamp_min(torch.finfo(energy.dtype).tiny)
        return energy.var(dim=1, unbiased=False).mean() / spread


class NormalFormLoss(ActionAngleLoss):
    """How far ``H`` is from the known action Hamiltonian ``K`` of the learned actions, at every sample.

    With ``I(x) = r(x)/2`` the learned actions at the ``B·T`` points of the batch, the loss is
    ``mean_b (H(x_b) − K(I(x_b)))² / Var_b H(x_b)``: invariant under rescaling ``H`` and ``K`` together, and zero
    exactly when ``H = K ∘ I`` at every point. On a region, ``H = K ∘ I`` means ``H ∘ T = K(I)`` with ``T``
    canonical, so every ``I_k`` is conserved and every angle turns at ``φ̇_k = −∂K/∂I_k``: the map is an
    action-angle chart with the prescribed frequencies, and no static-angle map fits. It needs no trajectories
    and no inverse, only ``K`` in closed form, e.g. ``Σ_k ω_k I_k`` (oscillators), ``E₀ + ω Σ_k k I_k``
    (:class:`~canonflow.systems.CalogeroMoser`, its ``action_hamiltonian``), ``−k²/(2 (I₁ + I₂)²)`` (planar
    Kepler in the ``(J_r, G)`` basis).

    Args:
        hamiltonian: ``H: (B, 2n) -> (B,)``.
        action_hamiltonian: ``K: (B, n) -> (B,)``, a function of the actions in the latent planes' order.
    """

    def __init__(self, hamiltonian: Function, action_hamiltonian: Function) -> None:
        if not (callable(hamiltonian) and callable(action_hamiltonian)):
            raise TypeError(
                "NormalFormLoss: needs callables hamiltonian (B, 2n) -> (B,) and action_hamiltonian (B, n) -> (B,)"
            )
        self.hamiltonian, self.action_hamiltonian = hamiltonian, action_hamiltonian

    def __call__(self, model: ActionAngleFlow, batch: TrajectoryBatch | torch.Tensor) -> torch.Tensor:
        states = TrajectoryBatch.of(batch).states
        points = states.reshape(-1, states.shape[-1])
        energy = self.hamiltonian(points)
        target = self.action_hamiltonian(0.5 * model.radii(points))
        spread = energy.var(unbiased=False).clamp_min(torch.finfo(energy.dtype).tiny)
        return ((energy - target) ** 2).mean() / spread


class ActionLoss(ActionAngleLoss):
    """How far the learned actions are from known exact actions, at every sample of the batch.

    With ``I(x) = r(x)/2`` the learned and ``A(x)`` the exact actions, the loss is
    ``mean_{b,k} (I_k(x_b) − A_k(x_b))² / (A_k(x_b) + ε_k)²`` with ``ε_k = 0.01 · mean_b A_k(x_b)``: the squared
    relative error of each action, as the action-conservation metric weighs it, kept finite at ``A_k → 0``.
    Zero exactly when the chart's actions are the exact ones; a canonical map with exact actions has angles
    conjugate to them, so it is an action-angle chart (the angles are free up to ``φ → φ + ∇S(I)``). It fixes
    which chart is learned, which matters for resonant systems, where many charts conserve every action.

    Args:
        actions: ``A: (B, 2n) -> (B, n)`` in the latent planes' order, e.g.
            :meth:`~canonflow.systems.CalogeroMoser.actions` (from a Lax spectrum).
    """

    def __init__(self, actions: Function) -> None:
        if not callable(actions):
            raise TypeError(f"ActionLoss: needs a callable actions (B, 2n) -> (B, n), got {actions!r}")
        self.actions = actions

    def __call__(self, model: ActionAngleFlow, batch: TrajectoryBatch | torch.Tensor) -> torch.Tensor:
        states = TrajectoryBatch.of(batch).states
        points = states.reshape(-1, states.shape[-1])
        with torch.no_grad():
            target = self.actions(points)
        floor = 0.01 * target.mean(0)
        return (((0.5 * model.radii(points) - target) / (target + floor)) ** 2).mean()


def make_loss(
    system: object | None = None,
    *,
    normalization: str = "spread",
    angle_weight: float = 0.0,
    hamiltonian_weight: float = 0.0,
    num_angles: int = 32,
    normal_form_weight: float = 0.0,
    action_weight: float = 0.0,
) -> Loss:
    """The loss of a preset written as plain data: :class:`TrajectoryLoss` ``(normalization)`` ``+ angle_weight ·``
    :class:`AngleLoss` ``+ hamiltonian_weight ·`` :class:`HamiltonianLoss` ``(system.hamiltonian, num_angles)``
    ``+ normal_form_weight ·`` :class:`NormalFormLoss` ``(system.hamiltonian, system.action_hamiltonian)``
    ``+ action_weight ·`` :class:`ActionLoss` ``(system.actions)``, in that order; terms of weight 0 are left out
    (and need nothing from ``system``). E.g. ``make_loss(system, normal_form_weight=1.0)`` for
    ``TrajectoryLoss() + NormalFormLoss(system.hamiltonian, system.action_hamiltonian)``.
    """
    loss: Loss = TrajectoryLoss(normalization)
    terms = (
        (angle_weight, lambda: AngleLoss()),
        (hamiltonian_weight, lambda: HamiltonianLoss(system.hamiltonian, num_angles)),
        (normal_form_weight, lambda: NormalFormLoss(system.hamiltonian, system.action_hamiltonian)),
        (action_weight, lambda: ActionLoss(system.actions)),
    )
    for weight, term in terms:
        if check_non_negative_float(weight, "every weight", "make_loss") > 0:
            if system is None:
                raise ValueError("make_loss: terms other than the trajectory loss need a system")
            loss = loss + weight * term()
    return loss
