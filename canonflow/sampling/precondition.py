"""Preconditioning a sampler's flow with an exact affine first stage fitted before training.

A posterior on its raw scale can sit far from the origin with scales and correlations a flow started at the
identity, with a base ``N(0, I)``, would need thousands of Adam steps to reach (a regression's coefficients at
``β ≈ 26`` with correlation ``−0.99``). Before training, a Gaussian ``N(m, Σ)`` for ``π(q)`` is fitted

- ``"laplace"``: at the mode ``m`` of ``U`` (L-BFGS from Stan's initial points, :func:`~canonflow.sampling.find_mode`)
  with ``Σ = (∇²U(m))⁻¹`` (eigenvalues floored at ``10⁻¹⁰`` of the largest);
- ``"moments"``: the mean and covariance of draws of a short NUTS run (dense metric, Stan's initialization;
  :func:`~canonflow.sampling.nuts`), robust where the mode is not representative (Neal's funnel's mode sits at
  ``v = −9(d − 1)/2``) or where there are several modes;

and composed into the flow *exactly* as the cotangent lift of the affine point map ``q = m + A y`` with
``Σ = U Λ Uᵀ`` and ``A = U Λ^{1/2}`` (``A Aᵀ = Σ``):

    ``(q, p) ↦ (y, P) = (A⁻¹(q − m), Aᵀ p)``,

a linear symplectic map (:class:`AffinePoint`), with the *momentum scale adjusted*: the auxiliary momenta of the
joint target become ``p ~ N(0, Σ⁻¹)`` (mass matrix ``M = Σ⁻¹``, as HMC's adapted metric), i.e.
``−log r(p) = ½ pᵀΣp − log|det A| + const = ½|Aᵀp|² − log|det A| + const`` (``FlowSampler.joint_potential``),
which leaves the ``q``-marginal ``π(q)`` and the normalizer unchanged. Under ``N(m, Σ) × N(0, Σ⁻¹)`` the image
``(y, P)`` is ``N(0, I₂ₙ)``, which the base ``N(0, I)`` and every unitary (linear symplectic, orthogonal) layer of
an untrained flow leave as it is: the preconditioned, untrained flow *is* the Gaussian approximation, and training
starts at the posterior's location and scale. The map has unit Jacobian like every canonical layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from canonflow.sampling.initialization import find_mode, initial_points
from canonflow.sampling.nuts import nuts
from canonflow.sampling.potential import CountingPotential, Potential
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_positive_int

__all__ = ["AffinePoint", "Preconditioner", "PRECONDITIONERS", "fit_preconditioner", "laplace", "warmup_moments"]

PRECONDITIONERS = ("moments", "laplace", "none")


class AffinePoint(SymplecticTransform):
    """``(q, p) -> (A⁻¹(q − m), Aᵀ p)`` on ``(B, 2n)`` (data -> latent), the cotangent lift of ``q = m + A y``.

    ``m`` (``loc``, ``(n,)``), ``A`` (``matrix``, ``(n, n)``, invertible), ``A⁻¹`` and ``log|det A|`` are buffers
    (fixed, not trained, saved with the model). Inverse: ``(y, P) -> (m + A y, A⁻ᵀ P)``. Exactly symplectic:
    ``Jᵀ Ω J = Ω`` for ``J = diag(A⁻¹, Aᵀ)``. Starts at the identity."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        dtype = torch.get_default_dtype()
        self.register_buffer("loc", torch.zeros(n, dtype=dtype))
        self.register_buffer("matrix", torch.eye(n, dtype=dtype))
        self.register_buffer("inverse_matrix", torch.eye(n, dtype=dtype))
        self.register_buffer("log_abs_det", torch.zeros((), dtype=dtype))

    def set(self, loc: torch.Tensor, matrix: torch.Tensor) -> None:
        """Set ``m`` ``(n,)`` and ``A`` ``(n, n)`` (and ``A⁻¹``)."""
        who = f"{type(self).__name__}.set"
        if loc.shape != (self.n,) or matrix.shape != (self.n, self.n):
            raise ValueError(f"{who}: expected loc ({self.n},) and matrix ({self.n}, {self.n})")
        inverse = torch.linalg.inv(matrix.double())
        if not (torch.isfinite(inverse).all() and torch.isfinite(loc).all()):
            raise ValueError(f"{who}: expected a finite loc and an invertible matrix")
        with torch.no_grad():
            self.loc.copy_(loc)
            self.matrix.copy_(matrix)
            self.inverse_matrix.copy_(inverse)
            self.log_abs_det.copy_(torch.linalg.slogdet(matrix.double())[1])

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[:, : self.n], x[:, self.n :]
        return torch.cat([(q - self.loc) @ self.inverse_matrix.T, p @ self.matrix], -1)

    def inverse_map(self, z: torch.Tensor) -> torch.Tensor:
        y, p = z[:, : self.n], z[:, self.n :]
        return torch.cat([self.loc + y @ self.matrix.T, p @ self.inverse_matrix], -1)


@dataclass
class Preconditioner:
    """A Gaussian ``N(mean, covariance)`` fitted to ``π(q)`` (``(d,)``, ``(d, d)``, float64) by ``method``, and
    what the fit cost: ``gradient_evaluations`` and ``potential_evaluations`` of ``U``, wall ``seconds``."""

    mean: torch.Tensor
    covariance: torch.Tensor
    method: str
    gradient_evaluations: int = 0
    potential_evaluations: int = 0
    seconds: float = 0.0

    def factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, Λ)`` with ``Σ = U Λ Uᵀ``, ``A = U Λ^{1/2}`` (so ``AᵀA = Λ``); ``(d, d)`` and ``(d,)``."""
        covariance = 0.5 * (self.covariance + self.covariance.T)
        eigenvalues, vectors = torch.linalg.eigh(covariance)
        eigenvalues = eigenvalues.clamp(min=1e-10 * float(eigenvalues.max().clamp(min=1e-300)))
        return vectors * eigenvalues.sqrt(), eigenvalues


def laplace(
    potential: Potential,
    dim: int,
    *,
    starts: int = 4,
    generator: torch.Generator | None = None,
) -> Preconditioner:
    """The Laplace approximation at the lowest of the local minima of ``U`` found by L-BFGS from ``starts`` of Stan's
    initial points: ``N(m, (∇²U(m))⁻¹)``. A ``ValueError`` when no finite mode or no positive curvature is found."""
    who = "laplace"
    check_positive_int(starts, "starts", who)
    began = time.perf_counter()
    counted = CountingPotential(potential, dim, who)

    def counted_u(q: torch.Tensor) -> torch.Tensor:
        counted.gradient_evaluations += q.shape[0]
        return potential(q)

    x0 = initial_points(potential, dim, starts, generator=generator)
    modes, values = find_mode(counted_u, x0)
    if not torch.isfinite(values).any():
        raise ValueError(f"{who}: the mode search left the support from every start")
    mode = modes[int(values.argmin())]
    hessian = torch.autograd.functional.hessian(lambda q: potential(q[None])[0], mode)
    hessian = 0.5 * (hessian + hessian.T)
    eigenvalues, vectors = torch.linalg.eigh(hessian)
    if not (torch.isfinite(eigenvalues).all() and (eigenvalues > 0).all()):
        raise ValueError(f"{who}: the Hessian of U at the mode is not positive definite")
    covariance = (vectors / eigenvalues) @ vectors.T
    seconds = time.perf_counter() - began
    return Preconditioner(mode.detach(), covariance.detach(), "laplace", counted.gradient_evaluations + dim, 0, seconds)


def warmup_moments(
    potential: Potential,
    dim: int,
    *,
    chains: int = 4,
    warmup: int = 200,
    draws: int = 100,
    generator: torch.Generator | None = None,
) -> Preconditioner:
    """Mean and covariance of ``chains × draws`` NUTS draws (dense metric, ``warmup`` iterations, Stan's inits)."""
    who = "warmup_moments"
    for value, name in ((chains, "chains"), (warmup, "warmup"), (draws, "draws")):
        check_positive_int(value, name, who)
    began = time.perf_counter()
    x0 = initial_points(potential, dim, chains, generator=generator)
    result = nuts(potential, x0, draws, warmup=warmup, metric="dense", generator=generator)
    flat = result.samples.reshape(-1, dim).double()
    covariance = torch.cov(flat.T).reshape(dim, dim)
    return Preconditioner(
        flat.mean(0),
        covariance,
        "moments",
        result.gradient_evaluations + result.warmup_gradient_evaluations,
        result.potential_evaluations + result.warmup_potential_evaluations,
        time.perf_counter() - began,
    )


def fit_preconditioner(
    potential: Potential, dim: int, method: str = "moments", *, generator: torch.Generator | None = None
) -> Preconditioner:
    """:func:`warmup_moments` (``"moments"``) or :func:`laplace` (``"laplace"``) for ``π(q) ∝ e^{−U(q)}`` on
    ``ℝ^dim``."""
    if method == "moments":
        return warmup_moments(potential, dim, generator=generator)
    if method == "laplace":
        return laplace(potential, dim, generator=generator)
    raise ValueError(f"fit_preconditioner: unknown method {method!r}; expected 'moments' or 'laplace'")
