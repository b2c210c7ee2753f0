"""Held-out metrics of a learned action-angle map (:func:`evaluate`) and their building blocks.

On exact action-angle coordinates every action ``I_k`` is constant along a trajectory and every angle ``φ_k``
advances linearly in time at ``−∂K/∂I_k``; ``K = H ∘ T`` does not depend on the angles. The metrics measure how
far a learned map is from each of these on trajectories it was not trained on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from canonflow.phase_space import join
from canonflow.validation import check_times, check_trajectories, validation

if TYPE_CHECKING:
    from canonflow.action_angle.model import ActionAngleFlow

__all__ = [
    "unwrap",
    "linear_fit",
    "action_conservation",
    "action_error",
    "frequency_error",
    "angle_independence",
    "evaluate",
    "parameter_count",
]


def unwrap(angles: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Remove the ``2π`` jumps of ``angles`` along ``dim`` (as ``numpy.unwrap``)."""
    step = torch.diff(angles, dim=dim)
    step = torch.remainder(step + math.pi, 2 * math.pi) - math.pi
    first = angles.narrow(dim, 0, 1)
    return torch.cat([first, first + torch.cumsum(step, dim=dim)], dim=dim)


def linear_fit(times: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares lines ``values ≈ a + b t`` along axis 1 of ``values (B, T, n)`` at ``times (T,)``.

    Returns ``(slope b, intercept a, R²)``, each ``(B, n)``; ``R² = 1 − SS_res/SS_tot`` (``1`` for a constant).
    """
    t = times.to(values.dtype).reshape(1, -1, 1)
    t_mean, v_mean = t.mean(1, keepdim=True), values.mean(1, keepdim=True)
    dt, dv = t - t_mean, values - v_mean
    slope = (dt * dv).sum(1) / (dt * dt).sum(1)
    intercept = v_mean.squeeze(1) - slope * t_mean.squeeze(1)
    residual = dv - slope.unsqueeze(1) * dt
    total = (dv * dv).sum(1)
    r2 = torch.where(total > 0, 1 - (residual * residual).sum(1) / total.clamp_min(torch.finfo(values.dtype).tiny), 1.0)
    return slope, intercept, r2


def action_conservation(actions: torch.Tensor) -> torch.Tensor:
    """Median over trajectories of ``std_t(I_k)/mean_t(I_k)`` for actions ``(B, T, n)``, shape ``(n,)``."""
    return (actions.std(dim=1, unbiased=False) / actions.mean(dim=1)).median(dim=0).values


def action_error(learned: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Median over all samples of ``|I_k − A_k| / A_k`` for learned and exact actions ``(..., n)``, shape ``(n,)``."""
    return ((learned - exact).abs() / exact).reshape(-1, exact.shape[-1]).median(dim=0).values


def frequency_error(learned: torch.Tensor, exact: torch.Tensor) -> dict[str, Any]:
    """Compare learned angular velocities ``(B, n)`` with exact frequencies; signs are ignored.

    * ``exact (B, n)``: one frequency per dof; the latent dofs are matched to the exact ones by the
      permutation with the smallest median error.
    * ``exact (B,)``: one fundamental frequency ``ω`` (degenerate systems such as Kepler or Calogero–Moser):
      latent dof ``k`` must turn at an integer multiple ``m_k ω`` (its winding number, the rounded median of
      ``|learned_k|/ω``).

    Returns ``{"relative_error": [median over trajectories of |(|learned_k|) − exact_k| / exact_k per latent
    dof], "matched": [exact dof or winding number per latent dof]}``.
    """
    speed = learned.abs()
    if exact.dim() == 1:
        ratio = speed / exact.unsqueeze(-1)
        winding = ratio.median(dim=0).values.round()
        error = (ratio - winding).abs().median(dim=0).values / winding.clamp_min(1.0)
        return {"relative_error": error.tolist(), "matched": [int(w) for w in winding.tolist()]}
    best: tuple[float, torch.Tensor, tuple[int, ...]] | None = None
    for permutation in itertools.permutations(range(exact.shape[-1])):
        target = exact[:, list(permutation)]
        error = ((speed - target).abs() / target).median(dim=0).values
        if best is None or float(error.max()) < best[0]:
            best = (float(error.max()), error, permutation)
    assert best is not None
    return {"relative_error": best[1].tolist(), "matched": list(best[2])}


def angle_independence(
    model: ActionAngleFlow,
    hamiltonian: Callable[[torch.Tensor], torch.Tensor],
    actions: torch.Tensor,
    num_angles: int = 64,
    generator: torch.Generator | None = None,
) -> float:
    """Median over tori ``I = actions (B, n)`` of ``std_φ H(T(I, φ)) / |mean_φ H(T(I, φ))|``, ``φ ~ U[0, 2π)ⁿ``.

    Tori where ``H`` is not finite count as infinitely bad (e.g. a Kepler torus sent through ``q = 0``).
    """
    angles = 2 * math.pi * torch.rand(len(actions), num_angles, model.n, generator=generator, dtype=actions.dtype)
    radius = torch.sqrt(2 * actions).unsqueeze(1).expand_as(angles)
    with torch.no_grad():
        x = model.inverse(join(radius * torch.cos(angles), radius * torch.sin(angles)))
        with validation(False):
            energy = hamiltonian(x.reshape(-1, 2 * model.n)).reshape(angles.shape[:2])
    relative = energy.std(dim=1, unbiased=False) / energy.mean(dim=1).abs()
    relative = torch.where(torch.isfinite(relative), relative, torch.inf)
    return float(relative.median())


def evaluate(
    model: ActionAngleFlow,
    trajectories: torch.Tensor,
    times: torch.Tensor,
    hamiltonian: Callable[[torch.Tensor], torch.Tensor] | None = None,
    exact_frequencies: torch.Tensor | None = None,
    num_angles: int = 64,
    seed: int = 0,
    exact_actions: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Held-out metrics of a learned action-angle map on trajectories ``(B, T, 2n)`` sampled at ``times (T,)``.

    * ``action_conservation``: per dof, median over trajectories of ``std_t(I_k)/mean_t(I_k)``;
    * ``angle_r2`` / ``angle_r2_min``: per dof, median / minimum over trajectories of the ``R²`` of a line
      through the unwrapped ``φ_k(t)``;
    * ``frequencies``: per dof, the median learned ``dφ_k/dt``;
    * with ``exact_frequencies`` (``(B, n)`` or ``(B,)``, see :func:`frequency_error`):
      ``frequency_error`` and ``frequency_matched``;
    * with ``hamiltonian``: ``angle_independence`` (:func:`angle_independence` at each trajectory's mean
      actions);
    * with ``exact_actions`` (``(B, 2n) -> (B, n)``, in the latent planes' order): ``action_error``, per dof the
      median over all samples of ``|I_k − A_k|/A_k`` (:func:`action_error`).
    """
    who = "evaluate"
    check_trajectories(trajectories, model.n, who)
    trajectories = trajectories.to(model.dtype)
    times = check_times(times, trajectories.shape[1], who, model.dtype)
    with torch.no_grad():
        actions, angles = model.to_action_angle(trajectories)
        slope, _, r2 = linear_fit(times, unwrap(angles, dim=1))
    metrics: dict[str, Any] = {
        "action_conservation": action_conservation(actions).tolist(),
        "angle_r2": r2.median(dim=0).values.tolist(),
        "angle_r2_min": r2.min(dim=0).values.tolist(),
        "frequencies": slope.median(dim=0).values.tolist(),
    }
    if exact_frequencies is not None:
        matched = frequency_error(slope, exact_frequencies.to(model.dtype))
        metrics["frequency_error"] = matched["relative_error"]
        metrics["frequency_matched"] = matched["matched"]
    if hamiltonian is not None:
        generator = torch.Generator().manual_seed(seed)
        metrics["angle_independence"] = angle_independence(
            model, hamiltonian, actions.mean(dim=1), num_angles, generator
        )
    if exact_actions is not None:
        with torch.no_grad():
            exact = exact_actions(trajectories.reshape(-1, trajectories.shape[-1])).reshape(actions.shape)
        metrics["action_error"] = action_error(actions, exact).tolist()
    return metrics


def parameter_count(model: nn.Module) -> int:
    """The number of trainable scalars of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
