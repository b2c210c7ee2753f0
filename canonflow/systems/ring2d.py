"""A two-dimensional ring-shaped Boltzmann benchmark with an exactly computable free energy."""

from __future__ import annotations

import math

import torch
from scipy import integrate

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem, Quantity, uniform_draws
from canonflow.validation import check_positive_int, check_real

__all__ = ["Ring2D"]


class Ring2D(HamiltonianSystem):
    """A particle of unit mass in the plane (``n = 2``) confined to a ring of radius ``R``.

    ``H(q, p) = (|q| − R)²/s + |p|²/2``,  ``q, p ∈ ℝ²``, with ``R = 2`` and ``s = 0.32`` by default

    (so the radial Boltzmann factor at ``β = 1`` is a Gaussian of width ``σ = √(s/2) = 0.4`` around ``R``,
    weighted by ``r``). The potential is rotationally invariant, so the energy and the angular momentum
    ``L = q₁p₂ − q₂p₁`` (``"angular_momentum"``) are conserved.

    Exact results: the free energy ``F(β) = −(1/β) ln Z`` with
    ``Z = ∫ e^{−βH} dq dp = 2π ∫_0^∞ r e^{−β(r−R)²/s} dr · 2π/β`` by 1-D quadrature
    (:meth:`free_energy`; ``F(1) ≈ −4.3715`` for the defaults), and exact samples of ``e^{−βH}/Z``
    (:meth:`sample_boltzmann`). ``sample_initial`` draws Boltzmann samples at ``β = 1``.
    """

    name = "ring2d"
    separable = True

    def __init__(self, radius: float = 2.0, scale: float = 0.32) -> None:
        super().__init__(2)
        self.radius = check_real(radius, "radius", "Ring2D", positive=True)
        self.scale = check_real(scale, "scale", "Ring2D", positive=True)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.vector_norm(q, dim=-1)
        return (r - self.radius) ** 2 / self.scale

    def log_density_q(self, q: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """The unnormalized configurational log-density ``−βU(q) = −β(|q| − R)²/s``, shape ``(B,)``."""
        self._check_half(q, "log_density_q", "q")
        return -beta * self._potential(q)

    def angular_momentum(self, x: torch.Tensor) -> torch.Tensor:
        """``L = q₁p₂ − q₂p₁`` (conserved), shape ``(B,)``."""
        self._check_x(x, "angular_momentum")
        q, p = split(x)
        return q[:, 0] * p[:, 1] - q[:, 1] * p[:, 0]

    def _extra_conserved(self) -> dict[str, Quantity]:
        return {"angular_momentum": self.angular_momentum}

    def free_energy(self, beta: float = 1.0) -> float:
        """``F(β) = −(1/β) ln Z`` with ``Z = 2π ∫_0^∞ r e^{−β(r−R)²/s} dr · (2π/β)`` (quadrature)."""
        beta = check_real(beta, "beta", f"{self._who}.free_energy", positive=True)
        sigma = math.sqrt(self.scale / (2 * beta))
        upper = self.radius + 40.0 * sigma
        radial, _ = integrate.quad(
            lambda r: r * math.exp(-beta * (r - self.radius) ** 2 / self.scale),
            0.0,
            upper,
            points=[self.radius],
            epsabs=0.0,
            epsrel=1e-13,
            limit=200,
        )
        log_z = math.log(2 * math.pi * radial) + math.log(2 * math.pi / beta)
        return -log_z / beta

    def log_normalizer_q(self, beta: float = 1.0) -> float:
        """``ln Z_q = ln ∫ e^{−βU(q)} dq = −βF(β) − ln(2π/β)``: the normalizer of :meth:`log_density_q`, so the
        exact configurational NLL of ``q`` is ``−log_density_q(q) + log_normalizer_q()``."""
        return -beta * self.free_energy(beta) - math.log(2 * math.pi / beta)

    def _sample_radius(self, num: int, beta: float, generator: torch.Generator | None) -> torch.Tensor:
        """Radii from the density ``∝ r e^{−β(r−R)²/s}`` on ``r > 0`` by inverting its closed-form CDF.

        With ``μ = R``, ``σ² = s/(2β)``:
        ``G(r) = σ²(e^{−μ²/2σ²} − e^{−(r−μ)²/2σ²}) + μσ√(2π)(Φ((r−μ)/σ) − Φ(−μ/σ))``, inverted by bisection
        to float64 precision.
        """
        mu, sigma = self.radius, math.sqrt(self.scale / (2 * beta))

        def cdf(r: torch.Tensor) -> torch.Tensor:
            z = (r - mu) / sigma
            return sigma**2 * (math.exp(-0.5 * (mu / sigma) ** 2) - torch.exp(-0.5 * z * z)) + mu * sigma * math.sqrt(
                2 * math.pi
            ) * (torch.special.ndtr(z) - torch.special.ndtr(torch.tensor(-mu / sigma, dtype=torch.float64)))

        total = cdf(torch.tensor(mu + 60 * sigma, dtype=torch.float64))
        target = uniform_draws((num,), 0.0, 1.0, generator) * total
        lo = torch.zeros(num, dtype=torch.float64)
        hi = torch.full((num,), mu + 60 * sigma, dtype=torch.float64)
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            below = cdf(mid) < target
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def sample_boltzmann(
        self,
        num: int,
        beta: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Exact samples from ``e^{−βH}/Z``, shape ``(num, 4)``.

        Radius by inverse CDF (see ``_sample_radius``), angle ``~ U(0, 2π)``, momenta ``p ~ N(0, I/β)``.
        """
        who = f"{self._who}.sample_boltzmann"
        check_positive_int(num, "num", who)
        beta = check_real(beta, "beta", who, positive=True)
        r = self._sample_radius(num, beta, generator)
        theta = uniform_draws((num,), 0.0, 2 * math.pi, generator)
        q = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1)
        p = torch.randn((num, 2), generator=generator, dtype=torch.float64) / math.sqrt(beta)
        return join(q, p).to(dtype)

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.sample_boltzmann(num, 1.0, generator)

    def _params(self) -> str:
        return f"radius={self.radius}, scale={self.scale}"
