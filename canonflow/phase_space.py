"""Phase-space conventions.

A batch of phase-space points is a tensor ``x`` of shape ``(B, 2n)`` laid out ``[q_1..q_n, p_1..p_n]``
(the "block" layout). A map ``x -> y`` is canonical (symplectic) when its Jacobian ``J = ∂y/∂x``
satisfies ``Jᵀ Ω J = Ω`` with ``Ω = [[0, I], [-I, 0]]``; then ``det J = 1`` and ``log|det J| = 0``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from canonflow.autodiff import vector_jacobian_product

__all__ = [
    "split",
    "join",
    "symplectic_form",
    "to_interleaved",
    "from_interleaved",
    "hamiltonian_vector_field",
    "poisson_bracket",
]


def _half(x: torch.Tensor, who: str) -> int:
    if x.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected an even last dimension 2n, got shape {tuple(x.shape)}")
    return x.shape[-1] // 2


def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x`` of shape ``(..., 2n)`` into ``(q, p)``, each of shape ``(..., n)``.

    >>> q, p = split(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    >>> q, p
    (tensor([[1., 2.]]), tensor([[3., 4.]]))
    """
    n = _half(x, "split")
    return x[..., :n], x[..., n:]


def join(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Join ``q`` and ``p`` of equal shape ``(..., n)`` into ``x = [q, p]`` of shape ``(..., 2n)``.

    >>> join(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]]))
    tensor([[1., 2., 3., 4.]])
    """
    if q.shape != p.shape:
        raise ValueError(f"join: q and p must have the same shape, got {tuple(q.shape)} and {tuple(p.shape)}")
    return torch.cat([q, p], dim=-1)


def symplectic_form(n: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """The canonical symplectic matrix ``Ω = [[0, I_n], [-I_n, 0]]`` of shape ``(2n, 2n)``."""
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"symplectic_form: expected a positive integer n, got {n!r}")
    eye = torch.eye(n, dtype=dtype, device=device)
    zero = torch.zeros(n, n, dtype=dtype, device=device)
    return torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)


def to_interleaved(x: torch.Tensor) -> torch.Tensor:
    """Block layout ``[q_1..q_n, p_1..p_n]`` -> interleaved layout ``[q_1, p_1, q_2, p_2, ...]``."""
    q, p = split(x)
    return torch.stack([q, p], dim=-1).flatten(-2)


def from_interleaved(x: torch.Tensor) -> torch.Tensor:
    """Interleaved layout ``[q_1, p_1, q_2, p_2, ...]`` -> block layout ``[q_1..q_n, p_1..p_n]``."""
    n = _half(x, "from_interleaved")
    pairs = x.unflatten(-1, (n, 2))
    return join(pairs[..., 0], pairs[..., 1])


def _gradient(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, who: str) -> torch.Tensor:
    def scalar(y: torch.Tensor) -> torch.Tensor:
        value = f(y)
        if value.shape != y.shape[:1]:
            raise ValueError(f"{who}: the function must map (B, 2n) to (B,), got output shape {tuple(value.shape)}")
        return value

    return vector_jacobian_product(scalar, x, torch.ones(x.shape[0], dtype=x.dtype, device=x.device))


def hamiltonian_vector_field(hamiltonian: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Hamilton's equations ``ẋ = Ω ∇H(x)``, i.e. ``(q̇, ṗ) = (∂H/∂p, -∂H/∂q)``, shape ``(B, 2n)``."""
    dq, dp = split(_gradient(hamiltonian, x, "hamiltonian_vector_field"))
    return join(dp, -dq)


def poisson_bracket(
    f: Callable[[torch.Tensor], torch.Tensor],
    g: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
) -> torch.Tensor:
    """Poisson bracket ``{f, g}(x) = ∇_q f · ∇_p g - ∇_p f · ∇_q g`` of shape ``(B,)``.

    ``f`` and ``g`` map ``(B, 2n)`` to ``(B,)``. With ``g = H`` this is the time derivative of ``f``
    along Hamilton's flow, so a conserved quantity has ``{f, H} = 0``.
    """
    fq, fp = split(_gradient(f, x, "poisson_bracket"))
    gq, gp = split(_gradient(g, x, "poisson_bracket"))
    return (fq * gp - fp * gq).sum(-1)
