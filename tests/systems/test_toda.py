"""``canonflow/systems/toda.py``: the Lax matrix's normalization, its conserved traces and the closed-form
vector field."""

from __future__ import annotations

import pytest
import torch
from randomness import gen

from canonflow.phase_space import hamiltonian_vector_field, poisson_bracket
from canonflow.systems import Toda


def test_lax_normalization_and_a_wrong_trace_is_not_conserved() -> None:
    toda = Toda(N=4)
    y = toda.sample_initial(8, generator=gen(3))
    # trace of L^k with a wrong (factor 2) off-diagonal normalization is not conserved
    lax = toda.lax_matrix(y)
    assert torch.allclose(torch.diagonal(lax @ lax, dim1=-2, dim2=-1).sum(-1), toda(y) / 2)

    def wrong_trace3(z: torch.Tensor) -> torch.Tensor:
        m = toda.lax_matrix(z)
        diag = torch.diag_embed(torch.diagonal(m, dim1=-2, dim2=-1))
        m = diag + 2 * (m - diag)
        return torch.diagonal(m @ m @ m, dim1=-2, dim2=-1).sum(-1)

    assert poisson_bracket(wrong_trace3, toda, y).abs().max() > 1e-3


@pytest.mark.parametrize(("N", "periodic"), [(3, True), (5, True), (2, False), (4, False)])
def test_closed_form_vector_field_is_hamiltons_equations(N: int, periodic: bool) -> None:
    toda = Toda(N, periodic=periodic)
    x = (2 * toda.sample_initial(32, generator=gen(N))).requires_grad_(True)
    field = toda.vector_field(x)
    torch.testing.assert_close(field, hamiltonian_vector_field(toda.hamiltonian, x), rtol=1e-13, atol=1e-13)
    (gradient,) = torch.autograd.grad(field.sum(), x)  # differentiable, as integrators and losses need
    assert torch.isfinite(gradient).all() and gradient.abs().max() > 0


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="N >= 3"):
        Toda(N=2)
