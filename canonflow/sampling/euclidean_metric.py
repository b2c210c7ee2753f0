"""The Euclidean metric of HMC and NUTS, and their leapfrog step with a step size per chain.

*Metric.* Momenta are ``p ~ N(0, M)`` with inverse mass ``Σ = M⁻¹`` either diagonal (``(d,)``) or dense
(``(d, d)``, ``Σ = L Lᵀ``); the kinetic energy is ``K(p) = pᵀ Σ p / 2``, the velocity ``∂K/∂p = Σ p`` and a fresh
momentum is ``p = L⁻ᵀ z``, ``z ~ N(0, I)`` (``Cov p = L⁻ᵀ L⁻¹ = Σ⁻¹``).

*Leapfrog with a step per chain.* :func:`leapfrog_step` is the Störmer–Verlet step of
:func:`canonflow.integrators.leapfrog` (kick ``ε/2``, drift ``ε``, kick ``ε/2``) with a step size per chain
``ε`` of shape ``(B,)`` (the integrator's input checks take one scalar step) and the gradient at the start carried
in, so that one step costs one gradient of ``U``. It is symplectic and time-reversible (``−ε`` retraces it) for
every chain.

*Which metric.* ``"diag"`` adapts a diagonal ``Σ`` (Stan's default ``diag_e``), ``"dense"`` a dense one (Stan's
``dense_e``), ``"auto"`` (the default of ``hmc`` and ``nuts``) a dense one when ``d ≤`` :data:`AUTO_DENSE_MAX_DIM`
and a diagonal one above: a diagonal metric cannot undo correlations (a raw-scale regression with correlation
−0.999 leaves HMC's chains unmixed), while at small ``d`` a dense metric's ``O(d²)`` per step and ``O(d³)`` per
window cost nothing next to a gradient of ``U``, and its ``d(d + 1)/2`` entries are estimated from the windows'
draws of every chain (at least ``25 × chains`` of them, shrunk towards ``10⁻³ I`` as in Stan).
"""

from __future__ import annotations

import torch

from canonflow.sampling.potential import CountingPotential

__all__ = ["AUTO_DENSE_MAX_DIM", "METRICS", "Metric", "dense_metric", "leapfrog_step"]

METRICS = ("auto", "diag", "dense")
AUTO_DENSE_MAX_DIM = 50
"""The largest dimension for which ``metric="auto"`` adapts a dense metric."""


def dense_metric(metric: str, dim: int, who: str) -> bool:
    """Whether ``metric`` (one of :data:`METRICS`; see the module docstring) adapts a dense inverse mass in
    dimension ``dim``; an unknown name is a ``ValueError`` naming ``who``."""
    if metric not in METRICS:
        raise ValueError(f"{who}: unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return metric == "dense" or (metric == "auto" and dim <= AUTO_DENSE_MAX_DIM)


class Metric:
    """The Euclidean metric of HMC: inverse mass ``Σ``, diagonal ``(d,)`` or dense ``(d, d)`` symmetric positive
    definite; see the module docstring. ``dtype`` and device follow ``inverse_mass``."""

    def __init__(self, inverse_mass: torch.Tensor) -> None:
        who = "Metric"
        if not isinstance(inverse_mass, torch.Tensor) or inverse_mass.dim() not in (1, 2):
            raise ValueError(f"{who}: expected an inverse mass of shape (d,) or (d, d)")
        if not torch.isfinite(inverse_mass).all():
            raise ValueError(f"{who}: the inverse mass contains NaN or Inf")
        self.inverse_mass = inverse_mass
        self.dense = inverse_mass.dim() == 2
        if self.dense:
            d = inverse_mass.shape[0]
            if inverse_mass.shape != (d, d):
                raise ValueError(f"{who}: a dense inverse mass must be square, got {tuple(inverse_mass.shape)}")
            self.cholesky, info = torch.linalg.cholesky_ex(0.5 * (inverse_mass + inverse_mass.T))
            if int(info) != 0:
                raise ValueError(f"{who}: the dense inverse mass is not positive definite")
        elif not (inverse_mass > 0).all():
            raise ValueError(f"{who}: a diagonal inverse mass must be positive")

    @property
    def dim(self) -> int:
        """``d``."""
        return self.inverse_mass.shape[0]

    def velocity(self, p: torch.Tensor) -> torch.Tensor:
        """``Σ p`` for momenta ``(B, d)``."""
        return p @ self.inverse_mass if self.dense else p * self.inverse_mass

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        """``K(p) = pᵀ Σ p / 2``, shape ``(B,)``."""
        return 0.5 * (p * self.velocity(p)).sum(-1)

    def sample_momentum(self, chains: int, generator: torch.Generator | None) -> torch.Tensor:
        """``chains`` momenta ``p ~ N(0, Σ⁻¹)``, shape ``(chains, d)``."""
        z = torch.randn(chains, self.dim, generator=generator, dtype=self.inverse_mass.dtype)
        z = z.to(self.inverse_mass.device)
        if not self.dense:
            return z / self.inverse_mass.sqrt()
        # p = L⁻ᵀ z: solve Lᵀ p = z, i.e. pᵀ L = zᵀ
        return torch.linalg.solve_triangular(self.cholesky, z, upper=False, left=False)

    @classmethod
    def estimate(cls, draws: torch.Tensor, dense: bool, window: int) -> Metric:
        """Stan's regularized estimate from ``draws`` ``(N, d)`` of a window of ``window`` iterations:
        ``n/(n + 5) Σ̂ + 10⁻³ · 5/(n + 5) I`` with ``n = window``."""
        n = float(window)
        shrink, jitter = n / (n + 5.0), 1e-3 * 5.0 / (n + 5.0)
        if dense:
            covariance = torch.cov(draws.T).reshape(draws.shape[1], draws.shape[1])
            eye = torch.eye(draws.shape[1], dtype=draws.dtype, device=draws.device)
            return cls(shrink * covariance + jitter * eye)
        return cls(shrink * draws.var(0) + jitter)


def leapfrog_step(
    potential: CountingPotential,
    metric: Metric,
    q: torch.Tensor,
    p: torch.Tensor,
    g: torch.Tensor,
    step_size: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One leapfrog step per chain: ``p½ = p − ε/2 ∇U(q)``, ``q' = q + ε Σ p½``, ``p' = p½ − ε/2 ∇U(q')``.

    ``q``, ``p``, ``g = ∇U(q)``: ``(B, d)``; ``step_size``: ``(B,)`` (negative to integrate backwards). Returns
    ``(q', p', U(q'), ∇U(q'))``; one gradient evaluation per chain. Non-finite values propagate (the caller flags
    them as divergent)."""
    eps = step_size[:, None].to(q.dtype)
    p_half = p - 0.5 * eps * g
    q_new = q + eps * metric.velocity(p_half)
    u_new, g_new = potential.value_and_grad(q_new)
    return q_new, p_half - 0.5 * eps * g_new, u_new, g_new
