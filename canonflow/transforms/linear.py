"""Linear symplectic maps: the NAK parametrization and the matrix-exponential peer parametrization."""

from __future__ import annotations

import torch
from torch import nn

from canonflow.phase_space import join, split, symplectic_form
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_positive_int

__all__ = ["LinearSymplectic", "MatrixExpSymplectic"]


class LinearSymplectic(SymplecticTransform):
    """``x -> S x`` with ``S = N A K ∈ Sp(2n, ℝ)``; shapes ``(B, 2n) -> (B, 2n)``; ``forward`` is data -> latent.

    - ``K = [[X, -Y], [Y, X]]`` with ``X + iY = D R_k ⋯ R_1`` unitary: ``k`` complex Householder reflections
      ``R_v = 1 - 2 v v† / |v|²`` and phases ``D = diag(e^{iφ})``; on ``z = q + ip`` it is ``z -> (X + iY) z``.
    - ``A = diag(Lᵀ, L⁻¹)``: ``q -> Lᵀ q``, ``p -> L⁻¹ p`` with ``L = diag(eˢ)`` (or, with ``full=True``, lower
      triangular with positive diagonal ``eˢ``).
    - ``N = [[I, 0], [M, I]]``: ``p -> p + M q`` with ``M`` symmetric (diagonal, or full with ``full=True``).

    The inverse ``K⁻¹ A⁻¹ N⁻¹`` is exact and closed form. The reflections are applied in compact WY form,
    ``R_k ⋯ R_1 = I - V T V†``, as two thin real matrix products, and in the diagonal variant ``N A D`` is a
    ``2 × 2`` map per mode: ``O(n k)`` per sample.
    ``householder`` defaults to ``min(n - 1, 4)`` (``n - 1`` reflections and the phases already reach all of
    ``U(n)``; for ``n = 1`` a reflection is just ``-1``). Householder vectors start random, everything else
    at the identity.
    """

    def __init__(self, n: int, householder: int | None = None, full: bool = False) -> None:
        super().__init__(n)
        k = min(n - 1, 4) if householder is None else householder
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"LinearSymplectic: expected householder to be a non-negative int, got {householder!r}")
        self.householder = k
        self.full = bool(full)
        self.reflector_real = nn.Parameter(torch.randn(k, n))
        self.reflector_imag = nn.Parameter(torch.randn(k, n))
        self.phase = nn.Parameter(torch.zeros(n))
        self.log_scale = nn.Parameter(torch.zeros(n))
        self.shear = nn.Parameter(torch.zeros(n, n) if self.full else torch.zeros(n))
        if self.full:
            self.lower = nn.Parameter(torch.zeros(n * (n - 1) // 2))
            self.register_buffer("_lower_index", torch.tril_indices(n, n, -1), persistent=False)

    def extra_repr(self) -> str:
        return f"n={self.n}, householder={self.householder}, full={self.full}"

    def _compact_reflectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``V`` ``(n, k)`` and upper-triangular ``T`` ``(k, k)`` with ``R_k ⋯ R_1 = I - V T V†`` (compact WY form)."""
        reflectors = torch.complex(self.reflector_real, self.reflector_imag).flip(0)  # columns v_k, ..., v_1
        taus = 2.0 / (self.reflector_real.square() + self.reflector_imag.square()).sum(-1).flip(0)
        tri = taus[:1].to(reflectors.dtype).reshape(1, 1)
        for i in range(1, self.householder):
            column = -taus[i] * (tri @ (reflectors[:i].conj() @ reflectors[i]))
            tri = torch.cat(
                [
                    torch.cat([tri, column.unsqueeze(1)], 1),
                    torch.cat([tri.new_zeros(1, i), taus[i : i + 1].to(tri.dtype).reshape(1, 1)], 1),
                ],
                0,
            )
        return reflectors.T, tri

    def _reflect(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        """Apply ``R_k ⋯ R_1`` (or its inverse) to ``z = q + ip``, in real arithmetic: ``x - (x P) Q``."""
        if self.householder == 0:
            return x
        basis, tri = self._compact_reflectors()
        a, b = basis.real, basis.imag
        mixing = tri.conj() if inverse else tri.T
        mr, mi = mixing.real, mixing.imag
        encode = torch.cat([torch.cat([a, -b], 1), torch.cat([b, a], 1)], 0)  # z -> z conj(V)
        mix = torch.cat([torch.cat([mr, mi], 1), torch.cat([-mi, mr], 1)], 0)  # u -> u Tᵀ (or u conj(T))
        decode = torch.cat([torch.cat([a.T, b.T], 1), torch.cat([-b.T, a.T], 1)], 0)  # w -> w Vᵀ
        return x - (x @ (encode @ mix)) @ decode

    def _mode_coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-mode ``2 × 2`` map ``(q, p) -> (c₁₁q + c₁₂p, c₂₁q + c₂₂p)`` of ``N A D`` (diagonal variant)."""
        cos, sin = self.phase.cos(), self.phase.sin()
        scale, shear = self.log_scale.exp(), self.shear
        return scale * cos, -scale * sin, sin / scale + shear * scale * cos, cos / scale - shear * scale * sin

    def _triangular(self) -> torch.Tensor:
        tri = torch.diag(self.log_scale.exp())
        return tri.index_put((self._lower_index[0], self._lower_index[1]), self.lower)

    def _symmetric(self) -> torch.Tensor:
        return 0.5 * (self.shear + self.shear.T)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(self._reflect(x, inverse=False))
        if self.full:
            cos, sin = self.phase.cos(), self.phase.sin()
            q, p = q * cos - p * sin, q * sin + p * cos
            tri = self._triangular()
            q, p = q @ tri, torch.linalg.solve_triangular(tri, p.T, upper=False).T
            p = p + q @ self._symmetric()
        else:
            c11, c12, c21, c22 = self._mode_coefficients()
            q, p = c11 * q + c12 * p, c21 * q + c22 * p
        return join(q, p)

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        if self.full:
            tri = self._triangular()
            p = p - q @ self._symmetric()
            q, p = torch.linalg.solve_triangular(tri.T, q.T, upper=True).T, p @ tri.T
            cos, sin = self.phase.cos(), self.phase.sin()
            q, p = q * cos + p * sin, p * cos - q * sin
        else:
            c11, c12, c21, c22 = self._mode_coefficients()  # a 2 × 2 block of determinant one
            q, p = c22 * q - c12 * p, c11 * p - c21 * q
        return self._reflect(join(q, p), inverse=True)

    def matrix(self) -> torch.Tensor:
        """The ``(2n, 2n)`` matrix ``S`` of the forward map (``forward(x) = x Sᵀ`` row-wise)."""
        return self._forward(torch.eye(2 * self.n, dtype=self.phase.dtype, device=self.phase.device)).T


class MatrixExpSymplectic(SymplecticTransform):
    """``x -> exp(Ω H) x`` with ``H = Hᵀ`` learnable (starts at 0); ``forward`` is data -> latent.

    Shapes ``(B, 2n) -> (B, 2n)``. ``Ω H`` is a Hamiltonian matrix, so its exponential (computed with
    ``torch.linalg.matrix_exp``, ``O(n³)``) is exactly symplectic; the inverse is ``exp(-Ω H)``. This is the
    parametrization used by neuralCT (there with a truncated Taylor series), kept for comparison with
    ``LinearSymplectic``.
    """

    def __init__(self, n: int) -> None:
        super().__init__(check_positive_int(n, "n", "MatrixExpSymplectic"))
        self.weight = nn.Parameter(torch.zeros(2 * n, 2 * n))
        self.register_buffer("omega", symplectic_form(n), persistent=False)

    def _generator(self) -> torch.Tensor:
        return self.omega @ (0.5 * (self.weight + self.weight.T))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ torch.linalg.matrix_exp(self._generator()).T

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x @ torch.linalg.matrix_exp(-self._generator()).T

    def matrix(self) -> torch.Tensor:
        """The ``(2n, 2n)`` matrix ``exp(Ω H)`` of the forward map."""
        return torch.linalg.matrix_exp(self._generator())
