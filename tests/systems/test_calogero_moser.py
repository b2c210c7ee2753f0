"""``canonflow/systems/calogero_moser.py``: isochrony, ordering, and the exact actions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from randomness import gen

from canonflow.phase_space import poisson_bracket, split
from canonflow.systems import CalogeroMoser
from systems.reference import reference_solution


def test_calogero_moser_isochronous_and_ordered() -> None:
    system = CalogeroMoser(N=4, omega=1.3)
    x0 = system.sample_initial(3, generator=gen(16))
    q0 = split(x0)[0]
    assert (q0[:, 1:] - q0[:, :-1] >= 0.6 - 1e-12).all()
    times = np.linspace(0.0, system.period(), 9)
    traj = reference_solution(system, x0, times)
    assert torch.allclose(traj[:, -1], x0, atol=1e-7)
    assert (traj[..., 1:4] - traj[..., 0:3] > 0).all()  # order is preserved
    assert torch.allclose(system.lax_traces(x0)[:, 0], 2 * system(x0), rtol=1e-12)


@pytest.mark.parametrize(("N", "omega", "g"), [(3, 1.5, 0.7), (4, 1.0, 1.0)])
def test_calogero_moser_actions_generate_commuting_2pi_periodic_flows(N: int, omega: float, g: float) -> None:
    """The actions from the spectrum of L⁺L⁻: positive, zero at the equilibrium, ``H = E₀ + ω Σ k I_k``,
    conserved, in involution, and each generates a flow that returns after 2π but not after π."""
    system = CalogeroMoser(N, omega=omega, g=g)
    x0 = system.sample_initial(2, generator=gen(21))
    actions = system.actions(x0)
    assert actions.shape == (2, N) and (actions > 0).all()
    assert system.actions(system.equilibrium()[None]).abs().max() < 1e-12
    weights = torch.arange(1, N + 1, dtype=torch.float64)
    assert torch.allclose(system.ground_energy() + omega * actions @ weights, system(x0), rtol=1e-13)
    later = reference_solution(system, x0, np.array([0.0, 2.0]))[:, -1]
    assert torch.allclose(system.actions(later), actions, atol=1e-9)
    for k in range(N):
        action_k = lambda x, k=k: system.actions(x)[:, k]  # noqa: E731
        flow = reference_solution(action_k, x0, np.array([0.0, math.pi, 2 * math.pi]))
        assert torch.allclose(flow[:, 2], x0, atol=1e-8)
        assert (flow[:, 1] - x0).norm(dim=-1).min() > 0.1
        for j in range(k):
            bracket = poisson_bracket(lambda x, j=j: system.actions(x)[:, j], action_k, x0)
            assert bracket.abs().max() < 1e-10
