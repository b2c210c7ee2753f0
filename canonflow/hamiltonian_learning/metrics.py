"""Evaluating a learned Hamiltonian (the protocol of Choudhary et al. 2024, and Greydanus et al.'s energy MSE).

``H_θ`` is determined only up to an additive constant, so ``hamiltonian_error`` reports ``mean |H_θ(x) − c − H(x)|``
over test points with the offset ``c = mean(H_θ − H)``; ``hamiltonian_test_sets`` gives the three test
distributions and ``evaluate_hamiltonian`` the error on each. ``rollout`` integrates the learned and the true
dynamics from the same initial states and reports the energy error along them; ``rollout_errors`` summarizes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from canonflow.data import trajectories
from canonflow.hamiltonian_learning.model import model_dtype
from canonflow.integrators import get_integrator
from canonflow.phase_space import join
from canonflow.systems import HamiltonianSystem
from canonflow.validation import check_phase_space, check_positive_int

__all__ = [
    "Rollout",
    "evaluate_hamiltonian",
    "hamiltonian_error",
    "hamiltonian_test_sets",
    "rollout",
    "rollout_errors",
]


def _plane(
    kind: str, half_width: float, std: float, num: int, grid_size: int, seed: int, dtype: torch.dtype
) -> torch.Tensor:
    """Points ``(u, v)`` of one test distribution in a 2-D plane, shape ``(M, 2)``."""
    if kind == "grid":
        axis = torch.linspace(-half_width, half_width, grid_size, dtype=torch.float64)
        u, v = torch.meshgrid(axis, axis, indexing="ij")
        points = torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)
    elif kind == "uniform":
        generator = torch.Generator().manual_seed(seed)
        points = (2.0 * torch.rand(num, 2, generator=generator, dtype=torch.float64) - 1.0) * half_width
    elif kind == "gaussian":
        generator = torch.Generator().manual_seed(seed + 1)
        points = std * torch.randn(num, 2, generator=generator, dtype=torch.float64)
    else:
        raise ValueError(f"hamiltonian_test_sets: unknown test distribution {kind!r}")
    return points.to(dtype)


def hamiltonian_test_sets(
    system: HamiltonianSystem,
    *,
    num: int = 100_000,
    grid_size: int = 30,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, torch.Tensor]:
    """The three test distributions of Choudhary et al. (2024) for ``system``, as ``(M, 2n)`` tensors.

    One degree of freedom: ``"grid"`` — a ``grid_size × grid_size`` grid on ``[−2, 2]²`` in ``(q, p)``;
    ``"uniform"`` — ``num`` uniform points on ``[−2, 2]²``; ``"gaussian"`` — ``num`` standard-normal points.
    Hénon–Heiles (``system.name == "henon_heiles"``): the same in the slice ``q_x = 0.1``, ``p_x = 0.2`` with
    ``(q_y, p_y) ∈ [−0.5, 0.5]²``; the Gaussian there is ``N(0, 0.25²)`` in ``(q_y, p_y)`` (the box's
    half-width over 2, the ratio of the 1-DoF case). Other systems raise ``ValueError``.
    """
    who = "hamiltonian_test_sets"
    check_positive_int(num, "num", who)
    check_positive_int(grid_size, "grid_size", who)
    if system.n == 1:
        return {k: _plane(k, 2.0, 1.0, num, grid_size, seed, dtype) for k in ("grid", "uniform", "gaussian")}
    if system.name == "henon_heiles":
        sets = {}
        for kind in ("grid", "uniform", "gaussian"):
            plane = _plane(kind, 0.5, 0.25, num, grid_size, seed, dtype)
            q = torch.stack([torch.full_like(plane[:, 0], 0.1), plane[:, 0]], dim=-1)
            p = torch.stack([torch.full_like(plane[:, 1], 0.2), plane[:, 1]], dim=-1)
            sets[kind] = join(q, p)
        return sets
    raise ValueError(f"{who}: test sets are defined for one-degree-of-freedom systems and henon_heiles, got {system}")


def hamiltonian_error(
    model: Callable[[torch.Tensor], torch.Tensor],
    system: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    *,
    batch_size: int = 65_536,
) -> float:
    """``mean |H_θ(x) − c − H(x)|`` over ``points`` (``(M, 2n)``), with the offset ``c = mean(H_θ − H)``.

    ``model`` is the learned and ``system`` the true Hamiltonian; the difference is taken in float64 after
    evaluating ``model`` in its own dtype, ``batch_size`` points at a time, without gradients.
    """
    who = "hamiltonian_error"
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[0] == 0:
        raise ValueError(f"{who}: expected points of shape (M, 2n) with M > 0, got {getattr(points, 'shape', points)}")
    dtype = model_dtype(model) if isinstance(model, nn.Module) else points.dtype
    differences = []
    with torch.no_grad():
        for chunk in points.split(batch_size):
            learned = model(chunk.to(dtype)).to(torch.float64)
            differences.append(learned - system(chunk.to(torch.float64)).to(torch.float64))
    difference = torch.cat(differences)
    return float((difference - difference.mean()).abs().mean())


def evaluate_hamiltonian(
    model: Callable[[torch.Tensor], torch.Tensor], system: HamiltonianSystem, **test_set_options: Any
) -> dict[str, float]:
    """``hamiltonian_error`` on each of ``hamiltonian_test_sets(system, **test_set_options)``, keyed by name."""
    return {
        k: hamiltonian_error(model, system, x) for k, x in hamiltonian_test_sets(system, **test_set_options).items()
    }


@dataclass
class Rollout:
    """Learned vs true trajectories from the same initial states and the energy error along them.

    Attributes:
        times: the sample times ``t_0 = 0 < … < t_{T−1}``, shape ``(T,)``.
        true_states: the true trajectories ``x_r(t)``, shape ``(R, T, 2n)``.
        learned_states: the trajectories ``x̂_r(t)`` of the learned dynamics, shape ``(R, T, 2n)``.
        energy_error: ``E(x̂_r(t)) − E(x_r(t))`` for the true energy ``E``, shape ``(R, T)``.
    """

    times: torch.Tensor
    true_states: torch.Tensor
    learned_states: torch.Tensor
    energy_error: torch.Tensor

    @property
    def energy_mse(self) -> float:
        """``(1/(R·T)) Σ_r Σ_t (E(x̂_r(t)) − E(x_r(t)))²``: Greydanus et al.'s energy MSE."""
        return float(self.energy_error.pow(2).mean())

    @property
    def state_mse(self) -> float:
        """``(1/(R·T·2n)) Σ ‖x̂_r(t) − x_r(t)‖²``."""
        return float((self.learned_states - self.true_states).pow(2).mean())


def rollout(
    model: Callable[[torch.Tensor], torch.Tensor],
    system: HamiltonianSystem,
    initial: torch.Tensor,
    t_end: float,
    num_points: int,
    *,
    integrator: str = "rk4",
    substeps: int = 10,
    energy: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Rollout:
    """Integrate the learned and the true dynamics from ``initial`` (``(R, 2n)``) over ``[0, t_end]``.

    The true trajectories come from ``canonflow.data.trajectories`` (DOP853 at tolerance 1e-12); the learned
    ones from ``canonflow.integrators.get_integrator(integrator)`` applied to ``model`` with step
    ``t_end / ((num_points − 1)·substeps)``, sampled at the same ``num_points`` times. ``energy`` (default: the
    true Hamiltonian ``system``) is evaluated along both in float64.
    """
    who = "rollout"
    check_positive_int(substeps, "substeps", who)
    if not (isinstance(num_points, int) and num_points >= 2):
        raise ValueError(f"{who}: expected num_points >= 2, got {num_points!r}")
    if not (isinstance(t_end, (int, float)) and math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"{who}: expected t_end > 0, got {t_end!r}")
    check_phase_space(initial, system.n, who)
    reference = trajectories(system, initial.shape[0], (float(t_end), num_points), initial=initial.to(torch.float64))
    dtype = model_dtype(model) if isinstance(model, nn.Module) else torch.float64
    h = float(t_end) / ((num_points - 1) * substeps)
    with torch.no_grad():
        path = get_integrator(integrator)(model, initial.to(dtype), h, (num_points - 1) * substeps, trajectory=True)
    learned = path[::substeps].transpose(0, 1).to(torch.float64)
    true = reference.clean_states
    energy = system.hamiltonian if energy is None else energy
    width = true.shape[-1]
    with torch.no_grad():
        error = energy(learned.reshape(-1, width)) - energy(true.reshape(-1, width))
    return Rollout(reference.times, true, learned, error.reshape(true.shape[:2]))


def rollout_errors(
    model: Callable[[torch.Tensor], torch.Tensor],
    system: HamiltonianSystem,
    initial: torch.Tensor,
    t_end: float,
    num_points: int,
    *,
    energy_scale: float = 1.0,
    energy_units: str = "H",
    integrator: str = "rk4",
    substeps: int = 20,
) -> tuple[dict[str, Any], Rollout]:
    """The :func:`rollout` from ``initial`` (``(R, 2n)``) over ``[0, t_end]`` and a summary of its errors.

    With ``s = energy_scale`` (energies reported in units ``s·H``, e.g. ``s = 2`` for Greydanus et al.'s
    ``H_G = 2H``) and ``ΔE_{r,t}`` the energy error along rollout ``r``: ``energy_mse = s² mean_{r,t} ΔE²``,
    ``energy_mse_per_rollout`` (``R`` values ``s² mean_t ΔE_{r,t}²``), ``energy_mse_librations`` and
    ``num_librations`` (the mean over the rollouts that start below ``system.separatrix_energy``; ``None`` for
    systems without one), ``energy_units`` (a label of ``s·H``), ``state_mse``, ``num_rollouts``, ``t_end``,
    ``num_points`` and ``integrator``.

    >>> from canonflow.systems import get_system
    >>> system = get_system("oscillator")  # the true Hamiltonian as the "learned" one: no error
    >>> summary, rolled = rollout_errors(system, system, torch.tensor([[1.0, 0.0]], dtype=torch.float64), 1.0, 11)
    >>> summary["energy_mse"] < 1e-12, rolled.learned_states.shape
    (True, torch.Size([1, 11, 2]))
    """
    rolled = rollout(model, system, initial, t_end, num_points, integrator=integrator, substeps=substeps)
    per_rollout = energy_scale**2 * rolled.energy_error.pow(2).mean(1)
    separatrix = getattr(system, "separatrix_energy", None)
    librating = None if separatrix is None else system(initial) < separatrix
    summary = {
        "energy_mse": energy_scale**2 * rolled.energy_mse,
        "energy_mse_per_rollout": per_rollout.tolist(),
        "energy_mse_librations": None if librating is None else float(per_rollout[librating].mean()),
        "num_librations": None if librating is None else int(librating.sum()),
        "energy_units": energy_units,
        "state_mse": rolled.state_mse,
        "num_rollouts": initial.shape[0],
        "t_end": t_end,
        "num_points": num_points,
        "integrator": f"{integrator}, {substeps} substeps per sample",
    }
    return summary, rolled
