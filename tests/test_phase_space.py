"""Phase-space conventions: layout helpers, Ω, Hamilton's vector field and Poisson brackets."""

from __future__ import annotations

import pytest
import torch

from canonflow.phase_space import (
    from_interleaved,
    hamiltonian_vector_field,
    join,
    poisson_bracket,
    split,
    symplectic_form,
    to_interleaved,
)

F64 = torch.float64


def test_split_join_round_trip_and_layout() -> None:
    x = torch.arange(6.0).reshape(1, 6)
    q, p = split(x)
    assert q.tolist() == [[0.0, 1.0, 2.0]] and p.tolist() == [[3.0, 4.0, 5.0]]
    assert torch.equal(join(q, p), x)
    with pytest.raises(ValueError, match="even"):
        split(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        join(torch.zeros(2, 1), torch.zeros(2, 2))


def test_interleaved_layout() -> None:
    x = torch.tensor([[1.0, 2.0, 10.0, 20.0]])  # q = (1, 2), p = (10, 20)
    assert to_interleaved(x).tolist() == [[1.0, 10.0, 2.0, 20.0]]
    assert torch.equal(from_interleaved(to_interleaved(x)), x)


def test_symplectic_form_layout() -> None:
    omega = symplectic_form(2, dtype=F64)
    assert omega.dtype == F64 and omega.tolist() == [[0, 0, 1, 0], [0, 0, 0, 1], [-1, 0, 0, 0], [0, -1, 0, 0]]
    for n in (0, -1, 2.0):
        with pytest.raises(ValueError, match="symplectic_form: expected a positive integer"):
            symplectic_form(n)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_symplectic_form_is_antisymmetric_and_squares_to_minus_one(n: int) -> None:
    omega = symplectic_form(n, dtype=F64)
    assert omega.shape == (2 * n, 2 * n)
    assert torch.equal(omega.T, -omega)
    assert torch.equal(omega @ omega, -torch.eye(2 * n, dtype=F64))


def test_canonical_brackets() -> None:
    x = torch.randn(4, 6, dtype=F64)
    for i in range(3):
        for j in range(3):
            bracket = poisson_bracket(lambda y, i=i: y[:, i], lambda y, j=j: y[:, 3 + j], x)
            torch.testing.assert_close(bracket, torch.full((4,), float(i == j), dtype=F64))


def test_energy_is_conserved_by_its_own_flow() -> None:
    def energy(y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (y**2).sum(-1) + y[:, 0] ** 4

    x = torch.randn(5, 4, dtype=F64)
    torch.testing.assert_close(poisson_bracket(energy, energy, x), torch.zeros(5, dtype=F64))
    field = hamiltonian_vector_field(energy, x)
    torch.testing.assert_close(field[:, :2], x[:, 2:])  # dq/dt = p
    torch.testing.assert_close(field[:, 2], -(x[:, 0] + 4 * x[:, 0] ** 3))  # dp/dt = -dV/dq


def test_bracket_rejects_non_scalar_functions() -> None:
    with pytest.raises(ValueError, match="poisson_bracket"):
        poisson_bracket(lambda y: y, lambda y: y[:, 0], torch.randn(2, 2))
