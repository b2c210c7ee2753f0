"""``canonflow/sampling/potential.py``: ``CountingPotential`` (row cache, evaluation counts, shape check) and
``check_initial`` (the samplers' shared check of starting states)."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import gen

from canonflow.sampling.potential import CountingPotential, check_initial
from sampling.common import normal_potential


def test_value_and_grad_recomputes_only_the_rows_that_moved() -> None:
    counting = CountingPotential(normal_potential, 2, "who")
    q = torch.randn(4, 2, generator=gen(0), dtype=torch.float64)
    u, g = counting.value_and_grad(q)
    torch.testing.assert_close(u, normal_potential(q))
    torch.testing.assert_close(g, q)  # ∇(|q|²/2) = q
    assert counting.gradient_evaluations == 4
    moved = q.clone()
    moved[1] += 1.0
    u, g = counting.value_and_grad(moved)
    assert counting.gradient_evaluations == 5  # one stale row
    torch.testing.assert_close(u, normal_potential(moved))
    torch.testing.assert_close(g, moved)
    counting.value_and_grad(moved)
    assert counting.gradient_evaluations == 5  # nothing moved: all rows cached
    assert not u.requires_grad and not g.requires_grad


def test_remember_seeds_the_cache() -> None:
    counting = CountingPotential(normal_potential, 2, "who")
    q = torch.randn(3, 2, generator=gen(1), dtype=torch.float64)
    counting.remember(q, torch.full((3,), 7.0, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64))
    u, g = counting.value_and_grad(q)
    assert counting.gradient_evaluations == 0
    assert (u == 7.0).all() and (g == 0).all()


def test_value_counts_potential_evaluations_and_a_constant_potential_has_zero_gradient() -> None:
    counting = CountingPotential(lambda q: torch.ones(q.shape[0], dtype=q.dtype), 2, "who")
    q = torch.randn(5, 2, generator=gen(2), dtype=torch.float64)
    assert counting.value(q).shape == (5,)
    assert counting.potential_evaluations == 5 and counting.gradient_evaluations == 0
    _, g = counting.value_and_grad(q)
    assert torch.equal(g, torch.zeros_like(q))


def test_counting_potential_refuses_what_is_not_a_potential() -> None:
    with pytest.raises(TypeError, match="who: expected potential to be a callable"):
        CountingPotential(3.0, 2, "who")
    counting = CountingPotential(lambda q: q.pow(2), 2, "who")
    with pytest.raises(ValueError, match=r"who: the potential must map \(B, 2\) to \(B,\) = \(4,\), got \(4, 2\)"):
        counting.value(torch.zeros(4, 2, dtype=torch.float64))


@pytest.mark.parametrize(
    ("x0", "error", "message"),
    [
        (torch.zeros(4, 2, dtype=torch.int64), TypeError, "floating-point torch.Tensor"),
        ([[0.0, 0.0]], TypeError, "floating-point torch.Tensor"),
        (torch.zeros(4, dtype=torch.float64), ValueError, r"shape \(chains, d\) with chains, d >= 1, got \(4,\)"),
        (torch.zeros(0, 2, dtype=torch.float64), ValueError, r"got \(0, 2\)"),
        (torch.tensor([[0.0, math.nan]], dtype=torch.float64), ValueError, "x0 contains NaN or Inf"),
    ],
    ids=["int-dtype", "list", "one-dim", "no-chains", "nan"],
)
def test_check_initial_refuses_bad_starting_states(x0: object, error: type, message: str) -> None:
    with pytest.raises(error, match=f"sampler: .*{message}"):
        check_initial(x0, CountingPotential(normal_potential, 2, "sampler"), "sampler")


def test_check_initial_names_the_chains_where_the_potential_is_not_finite() -> None:
    def walled(q: torch.Tensor) -> torch.Tensor:
        return torch.where(q[:, 0] > 0, torch.full_like(q[:, 0], math.inf), normal_potential(q))

    x0 = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [-2.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"sampler: the potential or its gradient is not finite at x0 for chains \[1, 3\]"
    ):
        check_initial(x0, CountingPotential(walled, 2, "sampler"), "sampler")
    u, g = check_initial(x0[::2], CountingPotential(walled, 2, "sampler"), "sampler")
    torch.testing.assert_close(u, normal_potential(x0[::2]))
    torch.testing.assert_close(g, x0[::2])
