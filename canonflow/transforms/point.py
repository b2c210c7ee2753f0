"""Point transformations: the cotangent lift of an invertible map of configuration space."""

from __future__ import annotations

import torch
from nflows.transforms import Transform

from canonflow.autodiff import vector_jacobian_product
from canonflow.phase_space import join, split
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_positive_int

__all__ = ["PointTransform"]


class PointTransform(SymplecticTransform):
    """``(q, p) -> (f(q), (∂f/∂q)⁻ᵀ p)`` for an invertible nflows transform ``f`` on ``ℝⁿ``.

    Shapes ``(B, 2n) -> (B, 2n)``; ``forward`` is data -> latent. The cotangent lift of any diffeomorphism
    of configuration space is canonical (generating function ``G(q, P) = P·f(q)``). The momentum update uses
    ``(∂f/∂q)⁻ᵀ = (∂f⁻¹/∂q')ᵀ``, i.e. one vector-Jacobian product of ``f.inverse`` at ``q' = f(q)``, so no
    Jacobian is formed or inverted. ``inverse``: ``(q', p') -> (f⁻¹(q'), (∂f/∂q)ᵀ p')``, one vector-Jacobian
    product of ``f``. ``f`` must be exactly invertible (e.g. nflows' elementwise, permutation, LU-linear or
    coupling transforms); its log-determinant is ignored because the lift's total Jacobian has ``det = 1``.
    Needs autograd in its forward pass: works under ``torch.no_grad()``, not under ``torch.inference_mode()``.
    """

    def __init__(self, q_transform: Transform, n: int) -> None:
        super().__init__(check_positive_int(n, "n", "PointTransform"))
        if not isinstance(q_transform, Transform):
            raise TypeError(f"PointTransform: expected an nflows Transform, got {type(q_transform).__name__}")
        self.q_transform = q_transform

    def _map(self, q: torch.Tensor) -> torch.Tensor:
        return self.q_transform(q)[0]

    def _unmap(self, q: torch.Tensor) -> torch.Tensor:
        return self.q_transform.inverse(q)[0]

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        q_new = self._map(q)
        return join(q_new, vector_jacobian_product(self._unmap, q_new, p, who="PointTransform.forward"))

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        q_old = self._unmap(q)
        return join(q_old, vector_jacobian_product(self._map, q_old, p, who="PointTransform.inverse"))
