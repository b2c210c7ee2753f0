"""What the tests of ``canonflow.integrators`` share: systems with analytic gradients or parts, reference
solutions, per-sample Jacobians and their symplectic defect, energy errors along trajectories."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

from canonflow.phase_space import symplectic_form
from canonflow.systems import HarmonicOscillator, Pendulum

DT = torch.float64


class FastOscillator(HarmonicOscillator):
    """The unit oscillator with the optional analytic ``gradient`` hook, for long runs."""

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FastPendulum(Pendulum):
    """The unit pendulum ``H = p²/2 + 1 - cos q`` with the optional analytic ``gradient`` hook."""

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.sin(x[:, 0]), x[:, 1]], -1)


def pendulum_reference(x0: torch.Tensor, t: float) -> torch.Tensor:
    """The pendulum's time-``t`` flow by DOP853 at tight tolerances."""
    rows = []
    for q, p in x0.tolist():
        sol = solve_ivp(
            lambda _, y: [y[1], -math.sin(y[0])], (0.0, t), [q, p], method="DOP853", rtol=2.3e-14, atol=1e-14
        )
        rows.append(sol.y[:, -1])
    return torch.tensor(np.array(rows), dtype=x0.dtype)


class NonSeparable:
    """A nonlinear, non-separable ``H = (q² + p²)/2 + q²p²/4`` (n = 1), as a plain callable."""

    separable = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[:, 0], x[:, 1]
        return 0.5 * (q**2 + p**2) + 0.25 * q**2 * p**2


def map_jacobian(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Per-sample Jacobians ``(B, 2n, 2n)`` of a batch-independent map ``fn``."""
    x = x.detach().requires_grad_(True)
    y = fn(x)
    rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(y.shape[1])]
    return torch.stack(rows, 1)


def defect(jac: torch.Tensor) -> float:
    omega = symplectic_form(jac.shape[-1] // 2, dtype=jac.dtype)
    return (jac.transpose(1, 2) @ omega @ jac - omega).abs().max().item()


ORDERS = {
    "symplectic_euler": 1,
    "leapfrog": 2,
    "yoshida4": 4,
    "yoshida6": 6,
    "implicit_midpoint": 2,
    "rk4": 4,
    "conformal_leapfrog": 2,
    "conformal_midpoint": 2,
}


IMPLICIT = {"implicit_midpoint", "conformal_midpoint"}


def explicit_euler(x0: torch.Tensor, h: float, steps: int) -> torch.Tensor:
    """Forward Euler ``x' = x + h Ω∇H(x)`` (not symplectic) for the oscillator, trajectory ``(steps + 1, B, 2)``."""
    states = [x0]
    x = x0
    for _ in range(steps):
        x = x + h * torch.stack([x[:, 1], -x[:, 0]], -1)
        states.append(x)
    return torch.stack(states)


def energy_error(system: object, trajectory: torch.Tensor) -> torch.Tensor:
    """``max_b |H(x_k) - H(x_0)|`` for every step ``k``, shape ``(steps + 1,)``."""
    energy = system(trajectory.reshape(-1, 2)).reshape(trajectory.shape[:2])
    return (energy - energy[0]).abs().amax(-1)


STEPS_LONG = 20_000  # 318 periods of the oscillator at h = 0.1; the growth ratios below do not depend on it


X0_OSCILLATOR = torch.tensor([[1.0, 0.0], [0.5, 0.8], [-2.0, 0.3]], dtype=DT)


X0_PENDULUM = torch.tensor([[1.0, 0.0], [0.5, 0.8], [2.0, 0.3]], dtype=DT)


def damped_oscillator_flow(x0: torch.Tensor, gamma: float, t: float) -> torch.Tensor:
    """The exact flow of ``q̇ = p``, ``ṗ = −q − γp`` (underdamped, ``γ < 2``) from ``x0`` ``(B, 2)``."""
    a, w = -0.5 * gamma, math.sqrt(1.0 - 0.25 * gamma**2)
    c, s, e = math.cos(w * t), math.sin(w * t), math.exp(a * t)
    # x(t) = e^{at} [cos(wt) I + sin(wt)/w (A − a I)] x0 with A = [[0, 1], [−1, −γ]]
    matrix = torch.tensor([[c - a * s / w, s / w], [-s / w, c + (-gamma - a) * s / w]], dtype=x0.dtype) * e
    return x0 @ matrix.T
