"""``canonflow/systems/centre_of_mass.py``: ``CentreOfMassFrame`` splits a translation-invariant lattice into its
centre of mass (a free particle) and the rest, canonically."""

from __future__ import annotations

import numpy as np
import torch
from randomness import gen

from canonflow.phase_space import hamiltonian_vector_field, split
from canonflow.systems import FPUT, CentreOfMassFrame, Toda
from systems.reference import reference_solution


def test_energy_is_the_frame_energy_plus_the_centre_of_mass_kinetic_energy() -> None:
    for lattice in (Toda(4, periodic=True), FPUT(N=5, alpha=0.25, beta=0.5)):
        frame = CentreOfMassFrame(lattice)
        assert frame.n == lattice.n - 1 and frame.name == f"{lattice.name}_cm"
        x = lattice.sample_initial(6, generator=gen(0)) + torch.randn(6, 2 * lattice.n, generator=gen(1)).double()
        total = split(x)[1].sum(-1)
        torch.testing.assert_close(lattice(x), frame(frame.reduce(x)) + total**2 / (2 * lattice.n), rtol=1e-12, atol=0)


def test_vector_field_is_hamiltons_equations_of_the_frame() -> None:
    for lattice in (Toda(4, periodic=True), Toda(3, periodic=False), FPUT(N=5, alpha=0.25, beta=0.5)):
        frame = CentreOfMassFrame(lattice)
        x = frame.sample_initial(16, generator=gen(2)).requires_grad_(True)
        field = frame.vector_field(x)
        expected = hamiltonian_vector_field(frame.hamiltonian, x)
        torch.testing.assert_close(field, expected, rtol=1e-13, atol=1e-13)


def test_embed_and_reduce_are_inverse_on_the_frame_and_remove_the_centre_of_mass() -> None:
    frame = CentreOfMassFrame(Toda(4, periodic=True))
    y = frame.sample_initial(5, generator=gen(2))
    torch.testing.assert_close(frame.reduce(frame.embed(y)), y, rtol=0, atol=1e-14)
    q, p = split(frame.embed(y))
    assert q.sum(-1).abs().max() < 1e-13 and p.sum(-1).abs().max() < 1e-13  # at rest at the origin
    x = frame.system.sample_initial(5, generator=gen(3))
    q, p = split(x)
    centred = torch.cat([q - q.mean(-1, keepdim=True), p - p.mean(-1, keepdim=True)], dim=-1)
    torch.testing.assert_close(frame.embed(frame.reduce(x)), centred, rtol=0, atol=1e-13)


def test_the_reduced_flow_is_the_lattice_flow_seen_from_the_centre_of_mass() -> None:
    frame = CentreOfMassFrame(Toda(3, periodic=True))
    y0 = frame.sample_initial(2, generator=gen(4))
    times = np.array([0.0, 1.5])
    reduced = reference_solution(frame, y0, times)[:, -1]
    full = reference_solution(frame.system, frame.embed(y0), times)[:, -1]
    torch.testing.assert_close(frame.reduce(full), reduced, rtol=0, atol=1e-9)


def test_reduce_is_a_poisson_map() -> None:
    # J Ω_N Jᵀ = Ω_{N−1} for the Jacobian J of reduce: the frame's brackets are the lattice's.
    frame = CentreOfMassFrame(Toda(4, periodic=True))
    x = frame.system.sample_initial(1, generator=gen(5))
    jac = torch.autograd.functional.jacobian(lambda y: frame.reduce(y[None])[0], x[0])
    torch.testing.assert_close(jac @ omega(4) @ jac.T, omega(3), rtol=0, atol=1e-14)


def omega(n: int) -> torch.Tensor:
    """The canonical ``2n × 2n`` matrix ``[[0, I], [−I, 0]]``."""
    eye, zero = torch.eye(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    return torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)
