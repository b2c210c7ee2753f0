"""Gradient fields ``q -> ∇F(q)``: the shifts of generating-function shears.

A shear ``p -> p - μ(q)`` is canonical exactly when ``∂μ_j/∂q_k = ∂μ_k/∂q_j``, i.e. when ``μ`` is a
gradient field. ``GradientField`` takes ∇F of any scalar network by autograd; ``IrrotationalMLP`` is a
gradient field by construction (symmetric Jacobian), with no autograd in its forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from canonflow.autodiff import vector_jacobian_product
from canonflow.nn.activations import make_activation
from canonflow.validation import check_positive_int

__all__ = ["GradientField", "IrrotationalMLP"]


class GradientField(nn.Module):
    """``q -> ∇F(q)`` for a scalar network ``F``, computed with autograd; ``(B, n) -> (B, n)``.

    ``potential`` maps ``(B, n)`` to ``(B,)`` (or ``(B, 1)``). Works under ``torch.no_grad()`` (the
    gradient is taken inside ``enable_grad`` and no graph is kept); under ``torch.inference_mode()`` it
    raises, since autograd cannot run there. Cost: one backward pass of ``F`` per call, twice that when
    the result is itself differentiated (training).
    """

    def __init__(self, potential: nn.Module, n: int | None = None) -> None:
        super().__init__()
        if not callable(potential):
            raise TypeError(f"GradientField: expected a callable scalar network, got {type(potential).__name__}")
        self.potential = potential
        self.n = None if n is None else check_positive_int(n, "n", "GradientField")

    def _scalar(self, q: torch.Tensor) -> torch.Tensor:
        value = self.potential(q)
        if value.dim() == 2 and value.shape[1] == 1:
            value = value.squeeze(1)
        if value.shape != q.shape[:1]:
            raise ValueError(
                f"GradientField: the potential must map (B, n) to (B,) or (B, 1), got {tuple(value.shape)}"
            )
        return value

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(q.shape[0], dtype=q.dtype, device=q.device)
        return vector_jacobian_product(self._scalar, q, ones, who="GradientField")


class IrrotationalMLP(nn.Module):
    """``μ(q) = W₁ᵀ σ(w₂ ⊙ σ(W₁ q + b₁) + b₂) + b₃``, ``(B, n) -> (B, n)``.

    ``W₁`` is ``(hidden, n)`` and ``w₂`` a vector (a diagonal second layer), so the Jacobian
    ``W₁ᵀ diag(σ'(h₂) ⊙ w₂ ⊙ σ'(h₁)) W₁`` is symmetric by construction: ``μ`` is the gradient of a scalar
    function and ``p -> p - μ(q)`` is canonical. One forward pass, no autograd. ``w₂`` and ``b₃`` start at
    zero, so the field starts at ``μ = 0`` (the shear starts as the identity).
    """

    def __init__(self, n: int, hidden: int = 64, activation: str = "tanh") -> None:
        super().__init__()
        who = type(self).__name__
        self.n = check_positive_int(n, "n", who)
        check_positive_int(hidden, "hidden", who)
        self.activation = make_activation(activation, who)
        self.w1 = nn.Parameter(torch.randn(hidden, n) / n**0.5)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.zeros(hidden))
        self.b2 = nn.Parameter(torch.zeros(hidden))
        self.b3 = nn.Parameter(torch.zeros(n))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        # fused bias adds (addmm, addcmul): three kernels fewer per call, and per backward, than matmul + add
        h = self.activation(torch.addmm(self.b1, q, self.w1.T))
        h = self.activation(torch.addcmul(self.b2, self.w2, h))
        return torch.addmm(self.b3, h, self.w1)
