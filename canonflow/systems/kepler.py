"""The Kepler problem in two or three dimensions, with its hidden (Laplace–Runge–Lenz) symmetry."""

from __future__ import annotations

import math

import torch

from canonflow.phase_space import join, split
from canonflow.systems.base import HamiltonianSystem, Quantity, uniform_draws
from canonflow.validation import check_positive_int, check_real

__all__ = ["Kepler", "solve_kepler_equation"]


def solve_kepler_equation(mean_anomaly: torch.Tensor, eccentricity: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """The eccentric anomaly ``E`` solving Kepler's equation ``E − e sin E = M`` for ``0 ≤ e < 1``, elementwise.

    Newton's method from ``E₀ = M + e sin M`` (a few iterations reach machine precision for ``e ≤ 0.9``;
    a fixed count keeps it simple and differentiable).
    """
    e = eccentricity
    ecc = mean_anomaly + e * torch.sin(mean_anomaly)
    for _ in range(iterations):
        ecc = ecc - (ecc - e * torch.sin(ecc) - mean_anomaly) / (1.0 - e * torch.cos(ecc))
    return ecc


def _random_rotation(num: int, generator: torch.Generator | None) -> torch.Tensor:
    """``num`` Haar-random 3×3 rotation matrices (float64), via QR of Gaussian matrices."""
    g = torch.randn((num, 3, 3), generator=generator, dtype=torch.float64)
    qmat, r = torch.linalg.qr(g)
    qmat = qmat * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    det = torch.linalg.det(qmat)
    qmat[:, :, 0] = qmat[:, :, 0] * det.unsqueeze(-1)
    return qmat


class Kepler(HamiltonianSystem):
    """A particle in an attractive inverse-square force field in ``d = 2`` or ``3`` dimensions (``n = d``).

    ``H(q, p) = |p|²/2 − k/|q|``

    Conserved quantities (:meth:`conserved_quantities`):

    * ``"energy"``;
    * the angular momentum ``L = q × p``: in 2D the scalar ``L = q₁p₂ − q₂p₁`` (``"angular_momentum"``),
      in 3D its components ``"angular_momentum_x"``, ``"angular_momentum_y"``, ``"angular_momentum_z"``;
    * the Laplace–Runge–Lenz vector ``A = p × L − k q/|q|``, in 2D ``A = (p₂L, −p₁L) − k q/|q|``
      (``"lrl_x"``, ``"lrl_y"`` and in 3D ``"lrl_z"``). ``A`` points to the pericentre and ``|A| = k e``.

    Bound orbits (``E < 0``) are ellipses with semi-major axis ``a = −k/(2E)``, eccentricity
    ``e = √(1 + 2E|L|²/k²)`` and angular frequency ``ω = (−2E)^{3/2}/k = √(k/a³)`` (:meth:`frequencies`).

    ``sample_initial`` draws bound orbits from :meth:`sample_orbits` with its default ranges (in 3D, the
    planar orbit is then turned by a Haar-random rotation).
    """

    name = "kepler"
    separable = True

    def __init__(self, d: int = 2, k: float = 1.0) -> None:
        if isinstance(d, bool) or d not in (2, 3):
            raise ValueError(f"Kepler: expected d = 2 or 3 dimensions, got {d!r}")
        super().__init__(d)
        self.d = d
        self.k = check_real(k, "k", "Kepler", positive=True)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        return -self.k / torch.linalg.vector_norm(q, dim=-1)

    def _vector_field(self, x: torch.Tensor) -> torch.Tensor:  # (q̇, ṗ) = (p, −k q/|q|³), 15× autograd's speed
        q, p = split(x)
        return join(p, -self.k * q / torch.linalg.vector_norm(q, dim=-1, keepdim=True) ** 3)

    # ------------------------------------------------------------------ invariants
    def angular_momentum(self, x: torch.Tensor) -> torch.Tensor:
        """``L = q × p``: shape ``(B,)`` in 2D (``q₁p₂ − q₂p₁``), ``(B, 3)`` in 3D."""
        self._check_x(x, "angular_momentum")
        q, p = split(x)
        if self.d == 2:
            return q[:, 0] * p[:, 1] - q[:, 1] * p[:, 0]
        return torch.linalg.cross(q, p, dim=-1)

    def lrl_vector(self, x: torch.Tensor) -> torch.Tensor:
        """The Laplace–Runge–Lenz vector ``A = p × L − k q/|q|``, shape ``(B, d)``."""
        self._check_x(x, "lrl_vector")
        q, p = split(x)
        ell = self.angular_momentum(x)
        radial = self.k * q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
        if self.d == 2:
            return torch.stack([p[:, 1] * ell, -p[:, 0] * ell], dim=-1) - radial
        return torch.linalg.cross(p, ell, dim=-1) - radial

    def eccentricity(self, x: torch.Tensor) -> torch.Tensor:
        """The orbit's eccentricity ``e = |A|/k``, shape ``(B,)``."""
        return torch.linalg.vector_norm(self.lrl_vector(x), dim=-1) / self.k

    def semi_major_axis(self, x: torch.Tensor) -> torch.Tensor:
        """The semi-major axis ``a = −k/(2E)`` of a bound orbit (``E < 0``), shape ``(B,)``."""
        return -self.k / (2.0 * self.hamiltonian(x))

    def frequencies(self, x: torch.Tensor) -> torch.Tensor:
        """The exact angular frequency ``ω = (−2E)^{3/2}/k`` of bound orbits, shape ``(B,)``.

        The period is ``2π/ω``. Unbound points (``E ≥ 0``) raise ``ValueError``.
        """
        energy = self.hamiltonian(x)
        if bool((energy >= 0).any()):
            raise ValueError(f"{self._who}.frequencies: every point must be on a bound orbit (E < 0)")
        return (-2.0 * energy) ** 1.5 / self.k

    def period(self, x: torch.Tensor) -> torch.Tensor:
        """The orbital period ``T = 2π/ω = 2π k/(−2E)^{3/2}``, shape ``(B,)``."""
        return 2.0 * math.pi / self.frequencies(x)

    def _extra_conserved(self) -> dict[str, Quantity]:
        out: dict[str, Quantity] = {}
        axes = "xyz"[: self.d]
        if self.d == 2:
            out["angular_momentum"] = self.angular_momentum
        else:
            for i, a in enumerate(axes):
                out[f"angular_momentum_{a}"] = lambda x, i=i: self.angular_momentum(x)[:, i]
        for i, a in enumerate(axes):
            out[f"lrl_{a}"] = lambda x, i=i: self.lrl_vector(x)[:, i]
        return out

    # ------------------------------------------------------------------ sampling
    def sample_orbits(
        self,
        num: int,
        energy_range: tuple[float, float] = (-0.8, -0.3),
        eccentricity_range: tuple[float, float] = (0.1, 0.7),
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Points on random planar, counter-clockwise bound orbits, shape ``(num, 2d)``.

        For each point: ``E ~ U(energy_range)`` (``< 0``), ``e ~ U(eccentricity_range)`` (in ``[0, 1)``),
        ``a = −k/(2E)``, ``L = +√(k a (1 − e²)) > 0``; a mean anomaly ``M ~ U(0, 2π)`` (a uniformly random
        time along the orbit) is turned into the eccentric anomaly ``𝓔`` by Kepler's equation
        ``𝓔 − e sin 𝓔 = M``, giving in the perifocal frame

        ``q = (a(cos 𝓔 − e), a√(1−e²) sin 𝓔)``,  ``p = √(k/a) / (1 − e cos 𝓔) · (−sin 𝓔, √(1−e²) cos 𝓔)``,

        which is then rotated in the plane by a random pericentre angle ``ϖ ~ U(0, 2π)``. In 3D the orbit lies
        in the ``q₃ = 0`` plane (``L = L ẑ``, ``L_z > 0``).
        """
        who = f"{self._who}.sample_orbits"
        check_positive_int(num, "num", who)
        e_lo, e_hi = (float(v) for v in energy_range)
        c_lo, c_hi = (float(v) for v in eccentricity_range)
        if not (e_lo <= e_hi < 0):
            raise ValueError(f"{who}: energy_range must be (low, high) with low <= high < 0, got {energy_range}")
        if not (0 <= c_lo <= c_hi < 1):
            raise ValueError(
                f"{who}: eccentricity_range must be (low, high) with 0 <= low <= high < 1, got {eccentricity_range}"
            )
        energy = uniform_draws((num,), e_lo, e_hi, generator)
        ecc = uniform_draws((num,), c_lo, c_hi, generator)
        mean_anomaly = uniform_draws((num,), 0.0, 2 * math.pi, generator)
        varpi = uniform_draws((num,), 0.0, 2 * math.pi, generator)
        a = -self.k / (2.0 * energy)
        ea = solve_kepler_equation(mean_anomaly, ecc)
        root = torch.sqrt(1.0 - ecc**2)
        x_pf = a * (torch.cos(ea) - ecc)
        y_pf = a * root * torch.sin(ea)
        speed = torch.sqrt(self.k / a) / (1.0 - ecc * torch.cos(ea))
        vx_pf = -speed * torch.sin(ea)
        vy_pf = speed * root * torch.cos(ea)
        c, s = torch.cos(varpi), torch.sin(varpi)
        q = torch.stack([c * x_pf - s * y_pf, s * x_pf + c * y_pf], dim=-1)
        p = torch.stack([c * vx_pf - s * vy_pf, s * vx_pf + c * vy_pf], dim=-1)
        if self.d == 3:
            zeros = torch.zeros(num, 1, dtype=torch.float64)
            q, p = torch.cat([q, zeros], -1), torch.cat([p, zeros], -1)
        return join(q, p).to(dtype)

    def _sample_initial(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        x = self.sample_orbits(num, generator=generator)
        if self.d == 3:
            rot = _random_rotation(num, generator)
            q, p = split(x)
            x = join((rot @ q.unsqueeze(-1)).squeeze(-1), (rot @ p.unsqueeze(-1)).squeeze(-1))
        return x

    def _params(self) -> str:
        return f"d={self.d}, k={self.k}"
