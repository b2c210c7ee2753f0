"""Shared set-up of the system tests: one case per registered system and an independent DOP853 reference solver."""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import solve_ivp

from canonflow.phase_space import hamiltonian_vector_field
from canonflow.systems import HamiltonianSystem

# (registry name, constructor kwargs, integration time covering a few periods)
CASES = [
    ("oscillator", {"n": 2, "omega": [1.0, 1.7]}, 20.0),
    ("pendulum", {"g": 2.0, "l": 0.5}, 10.0),
    ("double_well", {}, 20.0),
    ("coupled_oscillator", {"alpha": 0.5}, 20.0),
    ("henon_heiles", {}, 20.0),
    ("kepler", {"d": 2}, 30.0),
    ("kepler", {"d": 3, "k": 1.5}, 30.0),
    ("toda", {"N": 3, "periodic": True}, 15.0),
    ("toda", {"N": 4, "periodic": False}, 10.0),
    ("calogero_moser", {"N": 3}, 13.0),
    ("fput", {"N": 8, "alpha": 0.25, "beta": 0.5}, 15.0),
    ("fput", {"N": 6}, 15.0),
    ("harmonic_chain", {"n": 6, "kappa": 1.3}, 15.0),
    ("ring2d", {}, 10.0),
]
IDS = [f"{name}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for name, kw, _ in CASES]


def reference_solution(system: HamiltonianSystem, x0: torch.Tensor, times: np.ndarray) -> torch.Tensor:
    """DOP853 solution of ẋ = Ω∇H for every row of ``x0``, shape (B, T, 2n) (independent of canonflow.data)."""
    num, width = x0.shape

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(y).view(num, width)
        return hamiltonian_vector_field(system, x).detach().numpy().ravel()

    sol = solve_ivp(rhs, (times[0], times[-1]), x0.numpy().ravel(), "DOP853", t_eval=times, rtol=1e-12, atol=1e-12)
    assert sol.success, sol.message
    return torch.from_numpy(sol.y.reshape(num, width, -1).transpose(0, 2, 1).copy())
