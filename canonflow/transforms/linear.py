"""Linear symplectic maps: the NAK parametrization and the matrix-exponential peer parametrization."""

from __future__ import annotations

import torch
from torch import nn

from canonflow.phase_space import join, split, symplectic_form
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_non_negative_int, check_positive_int

__all__ = ["LinearSymplectic", "MatrixExpSymplectic"]


def _unit_triangular_inverse(strict: torch.Tensor) -> torch.Tensor:
    """``(I + N)⁻¹`` for a nilpotent ``(k, k)`` ``N`` (strictly triangular, or the real block of a strictly
    triangular complex matrix), as ``(I − N)(I + N²)(I + N⁴)⋯``.

    ``N^k = 0``, so the product of ``⌈log₂ k⌉`` factors is the exact finite series
    ``Σ_{j<k} (−N)^j``; it is made of matrix products only, which every backend and ``torch.compile`` trace.
    """
    eye = torch.eye(strict.shape[0], dtype=strict.dtype, device=strict.device)
    inverse, power, span = eye - strict, strict, 2
    while span < strict.shape[0]:
        power = power @ power
        inverse = inverse @ (eye + power)
        span *= 2
    return inverse


def _real_block(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """The real ``(2a, 2b)`` matrix acting on rows ``[re z, im z]`` as the complex ``(a, b)`` matrix ``re + i im``
    acts on ``z``; it maps products to products, so complex matrix algebra runs on it in real arithmetic."""
    return torch.cat([torch.cat([re, im], 1), torch.cat([-im, re], 1)], 0)


class LinearSymplectic(SymplecticTransform):
    """``x -> S x`` with ``S = N A K ∈ Sp(2n, ℝ)``; shapes ``(B, 2n) -> (B, 2n)``; ``forward`` is data -> latent.

    - ``K = [[X, -Y], [Y, X]]`` with ``X + iY = D R_1 ⋯ R_k`` unitary: ``k`` complex Householder reflections
      ``R_v = 1 - 2 v v† / |v|²`` and phases ``D = diag(e^{iφ})``; on ``z = q + ip`` it is ``z -> (X + iY) z``.
    - ``A = diag(Lᵀ, L⁻¹)``: ``q -> Lᵀ q``, ``p -> L⁻¹ p`` with ``L = diag(eˢ)`` (or, with ``full=True``, lower
      triangular with positive diagonal ``eˢ``).
    - ``N = [[I, 0], [M, I]]``: ``p -> p + M q`` with ``M`` symmetric (diagonal, or full with ``full=True``).

    The inverse ``K⁻¹ A⁻¹ N⁻¹`` is exact and closed form. The reflections are applied in compact WY form,
    ``R_1 ⋯ R_k = I - V T V†``, as two thin real matrix products, and in the diagonal variant ``N A D`` is a
    ``2 × 2`` map per mode: ``O(n k)`` per sample.
    ``householder`` defaults to ``min(n - 1, 4)`` (``n - 1`` reflections and the phases already reach all of
    ``U(n)``; for ``n = 1`` a reflection is just ``-1``). Householder vectors start random, everything else
    at the identity.
    """

    def __init__(self, n: int, householder: int | None = None, full: bool = False) -> None:
        super().__init__(n)
        k = min(n - 1, 4) if householder is None else householder
        self.householder = check_non_negative_int(k, "householder", "LinearSymplectic")
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

    def _reflect(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        """Apply ``R_1 ⋯ R_k`` (or its inverse) to ``z = q + ip`` in compact WY form, in real arithmetic.

        ``R_1 ⋯ R_k = I - V T V†`` with ``V = [v_1 … v_k]`` and ``T⁻¹ = striu(V†V) + diag(V†V)/2`` (the UT
        transform), so on rows ``z -> z - (z conj(V) Tᵀ) Vᵀ`` (inverse: ``conj(T)`` for ``Tᵀ``).
        """
        if self.householder == 0:
            return x
        k = self.householder
        re, im = self.reflector_real.T, self.reflector_imag.T  # V = re + i im, (n, k)
        gram_re, gram_im = re.T @ re + im.T @ im, re.T @ im - im.T @ re  # G = V†V, Hermitian
        half = gram_re.diagonal() / 2  # T⁻¹ = D (I + D⁻¹ striu(G)) with D = diag(G)/2, so T = (I + D⁻¹ striu(G))⁻¹ D⁻¹
        # in real arithmetic (inductor has no complex kernels): the real block of D⁻¹ striu(G) is nilpotent too
        inverse_block = _unit_triangular_inverse(
            _real_block(gram_re.triu(1), gram_im.triu(1)) / half.repeat(2)[:, None]
        )
        tri_re, tri_im = inverse_block[:k, :k] / half[None, :], inverse_block[:k, k:] / half[None, :]
        if inverse:  # conj(V) conj(T)
            encode_re, encode_im = re @ tri_re - im @ tri_im, -(re @ tri_im + im @ tri_re)
        else:  # conj(V) Tᵀ
            encode_re, encode_im = re @ tri_re.T + im @ tri_im.T, re @ tri_im.T - im @ tri_re.T
        return x - (x @ _real_block(encode_re, encode_im)) @ _real_block(re.T, im.T)

    def _mode_coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-mode ``2 × 2`` map ``(q, p) -> (c₁₁q + c₁₂p, c₂₁q + c₂₂p)`` of ``N A D`` (diagonal variant)."""
        cos, sin = self.phase.cos(), self.phase.sin()
        scale, shear = self.log_scale.exp(), self.shear
        return scale * cos, -scale * sin, sin / scale + shear * scale * cos, cos / scale - shear * scale * sin

    def _triangular(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``L`` (lower triangular, diagonal ``eˢ``) and ``L⁻¹``: by a triangular solve (backward stable), or while
        compiling as ``(I + D⁻¹ striL)⁻¹ D⁻¹`` with ``D = diag(eˢ)`` (matrix products only)."""
        scale = self.log_scale.exp()
        strict = torch.zeros(self.n, self.n, dtype=scale.dtype, device=scale.device)
        strict = strict.index_put((self._lower_index[0], self._lower_index[1]), self.lower)
        tri = torch.diag(scale) + strict
        if torch.compiler.is_compiling():  # inductor does not lower solve_triangular's strides
            return tri, _unit_triangular_inverse(strict / scale[:, None]) / scale[None, :]
        return tri, torch.linalg.solve_triangular(
            tri, torch.eye(self.n, dtype=tri.dtype, device=tri.device), upper=False
        )

    def _symmetric(self) -> torch.Tensor:
        return 0.5 * (self.shear + self.shear.T)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(self._reflect(x, inverse=False))
        if self.full:
            cos, sin = self.phase.cos(), self.phase.sin()
            q, p = q * cos - p * sin, q * sin + p * cos
            tri, inverse = self._triangular()
            q, p = q @ tri, p @ inverse.T
            p = p + q @ self._symmetric()
        else:
            c11, c12, c21, c22 = self._mode_coefficients()
            q, p = c11 * q + c12 * p, c21 * q + c22 * p
        return join(q, p)

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = split(x)
        if self.full:
            tri, inverse = self._triangular()
            p = p - q @ self._symmetric()
            q, p = q @ inverse, p @ tri.T
            cos, sin = self.phase.cos(), self.phase.sin()
            q, p = q * cos + p * sin, p * cos - q * sin
        else:
            c11, c12, c21, c22 = self._mode_coefficients()  # a 2 × 2 block of determinant one
            q, p = c22 * q - c12 * p, c11 * p - c21 * q
        return self._reflect(join(q, p), inverse=True)

    def matrix(self) -> torch.Tensor:
        """The ``(2n, 2n)`` matrix ``S`` of the forward map (``forward(x) = x Sᵀ`` row-wise)."""
        return self.forward_map(torch.eye(2 * self.n, dtype=self.phase.dtype, device=self.phase.device)).T


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

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        return x @ torch.linalg.matrix_exp(self._generator()).T

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return x @ torch.linalg.matrix_exp(-self._generator()).T

    def matrix(self) -> torch.Tensor:
        """The ``(2n, 2n)`` matrix ``exp(Ω H)`` of the forward map."""
        return torch.linalg.matrix_exp(self._generator())
