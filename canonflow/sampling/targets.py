"""Boltzmann targets ``π(q) ∝ e^{−U(q)}`` on ``ℝ^d``: benchmarks with exact moments and samplers, and your own.

Every target has ``dim``, ``potential(q) -> (B,)`` for ``q`` of shape ``(B, d)`` and ``initial(num, generator)``,
an over-dispersed starting distribution for MCMC chains. The benchmark targets (``exact`` is ``True``) also have
exact ``mean`` and ``variance`` (float64 tensors of shape ``(d,)``) and ``sample(num, generator) -> (num, d)``
exact i.i.d. draws; ``get_target(name)`` builds one by name from ``TARGETS``. ``Target.from_potential(U, dim)``
makes a target of your own potential (``exact`` is ``False``: samplers are compared with one another, not with
an exact answer):

>>> target = Target.from_potential(lambda q: 0.5 * (q**2).sum(-1), 2, name="gaussian")
>>> target.potential(torch.zeros(3, 2)).shape, target.exact
(torch.Size([3]), False)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from canonflow.systems import Ring2D
from canonflow.validation import check_energy, check_positive_int

__all__ = [
    "Target",
    "PotentialTarget",
    "Funnel",
    "Banana",
    "RingTarget",
    "GaussianMixture",
    "IllConditionedGaussian",
    "TARGETS",
    "get_target",
]


class Target:
    """Base class: ``π(q) ∝ e^{−U(q)}`` on ``ℝ^d``. Subclasses set ``name``, ``dim``, ``mean``, ``variance`` and
    implement ``_potential`` and ``_sample``; :meth:`from_potential` makes a target of a potential alone."""

    name: str = "target"
    dim: int
    mean: torch.Tensor | None
    variance: torch.Tensor | None
    exact: bool = True
    """Whether ``mean``, ``variance`` and ``sample`` are exact (a benchmark target)."""

    @staticmethod
    def from_potential(
        potential: Callable[[torch.Tensor], torch.Tensor],
        dim: int,
        *,
        name: str = "target",
        initial: Callable[[int, torch.Generator | None], torch.Tensor] | None = None,
    ) -> PotentialTarget:
        """The target ``π(q) ∝ e^{−U(q)}`` of your own ``potential`` ``U: (B, dim) -> (B,)`` (any callable of
        torch operations); ``initial(num, generator) -> (num, dim)`` draws the chains' starting points (default
        ``N(0, I)``). Its moments and exact draws are unknown (``exact`` is ``False``)."""
        return PotentialTarget(potential, dim, name=name, initial=initial)

    def _check(self, q: torch.Tensor, who: str) -> None:
        if not isinstance(q, torch.Tensor) or q.dim() != 2 or q.shape[-1] != self.dim:
            shape = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
            raise ValueError(f"{type(self).__name__}.{who}: expected q of shape (B, {self.dim}), got {shape}")

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        """``U(q)`` (up to a constant), shape ``(B,)``."""
        self._check(q, "potential")
        return self._potential(q)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        return self.potential(q)

    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` exact i.i.d. draws from ``π``, float64 of shape ``(num, d)``."""
        check_positive_int(num, "num", f"{type(self).__name__}.sample")
        return self._sample(num, generator)

    def initial(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Over-dispersed starting points for chains: ``N(0, I)`` by default, shape ``(num, d)``."""
        check_positive_int(num, "num", f"{type(self).__name__}.initial")
        return torch.randn(num, self.dim, generator=generator, dtype=torch.float64)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _sample(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class PotentialTarget(Target):
    """A target given by its potential alone: ``π(q) ∝ e^{−U(q)}`` with ``U`` a callable ``(B, d) -> (B,)``.

    Made by :meth:`Target.from_potential`. ``mean`` and ``variance`` are ``None`` and ``sample`` raises: there is
    no exact answer to compare samplers with, only one another.
    """

    exact = False

    def __init__(
        self,
        potential: Callable[[torch.Tensor], torch.Tensor],
        dim: int,
        *,
        name: str = "target",
        initial: Callable[[int, torch.Generator | None], torch.Tensor] | None = None,
    ) -> None:
        who = "Target.from_potential"
        if not callable(potential):
            raise TypeError(f"{who}: expected a callable potential U(q) -> (B,), got {type(potential).__name__}")
        if initial is not None and not callable(initial):
            raise TypeError(f"{who}: expected initial(num, generator) to be callable, got {type(initial).__name__}")
        self.dim = check_positive_int(dim, "dim", who)
        self.name, self.mean, self.variance = str(name), None, None
        self._user_potential, self._initial = potential, initial

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        value = self._user_potential(q)
        return check_energy(value, q.shape[0], self.name, name="potential", domain=f"q of shape (B, {self.dim})")

    def _sample(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError(f"{self.name}: a target given by its potential has no exact sampler")

    def initial(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The chains' starting points ``(num, d)``: ``initial(num, generator)`` when given, else ``N(0, I)``."""
        if self._initial is None:
            return super().initial(num, generator)
        check_positive_int(num, "num", f"{self.name}.initial")
        start = self._initial(num, generator)
        if not isinstance(start, torch.Tensor) or tuple(start.shape) != (num, self.dim):
            got = tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__
            raise ValueError(f"{self.name}.initial: expected initial points of shape ({num}, {self.dim}), got {got}")
        return start

    def __repr__(self) -> str:
        return f"Target.from_potential(name={self.name!r}, dim={self.dim})"


class Funnel(Target):
    """Neal's funnel in ``d`` dimensions: ``v ~ N(0, σ²)``, ``x_i | v ~ N(0, eᵛ)``, ``i = 1..d−1``; ``q = (v, x)``.

    ``U(q) = v²/(2σ²) + Σ_i x_i² e^{−v}/2 + (d − 1) v/2``. Exact moments: ``E v = E x_i = 0``, ``Var v = σ²``,
    ``Var x_i = E eᵛ = e^{σ²/2}`` (``≈ 90.0`` for ``σ = 3``). The neck (``v ≪ 0``) needs tiny steps and the
    mouth large ones, which defeats any single HMC step size.
    """

    name = "funnel"

    def __init__(self, dim: int = 10, scale: float = 3.0) -> None:
        self.dim = check_positive_int(dim, "dim", "Funnel")
        if self.dim < 2:
            raise ValueError(f"Funnel: expected dim >= 2, got {dim}")
        self.scale = float(scale)
        self.mean = torch.zeros(self.dim, dtype=torch.float64)
        self.variance = torch.full((self.dim,), math.exp(self.scale**2 / 2), dtype=torch.float64)
        self.variance[0] = self.scale**2

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        v, x = q[:, 0], q[:, 1:]
        return 0.5 * v**2 / self.scale**2 + 0.5 * x.pow(2).sum(-1) * torch.exp(-v) + 0.5 * (self.dim - 1) * v

    def _sample(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        v = self.scale * torch.randn(num, 1, generator=generator, dtype=torch.float64)
        x = torch.randn(num, self.dim - 1, generator=generator, dtype=torch.float64) * torch.exp(v / 2)
        return torch.cat([v, x], dim=-1)


class Banana(Target):
    """The twisted Gaussian (Haario et al. 1999): ``y ~ N(0, diag(s², 1))`` mapped by ``(y₁, y₂ + b(y₁² − s²))``.

    ``U(q) = q₁²/(2s²) + (q₂ − b(q₁² − s²))²/2``. The twist is volume-preserving, so ``E q = 0``,
    ``Var q₁ = s²`` and ``Var q₂ = 1 + 2b²s⁴``. Defaults ``s = 2``, ``b = 0.2``: ``Var q₂ = 2.28``.
    """

    name = "banana"

    def __init__(self, scale: float = 2.0, twist: float = 0.2) -> None:
        self.dim = 2
        self.scale, self.twist = float(scale), float(twist)
        self.mean = torch.zeros(2, dtype=torch.float64)
        self.variance = torch.tensor([self.scale**2, 1 + 2 * self.twist**2 * self.scale**4], dtype=torch.float64)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        q1, q2 = q[:, 0], q[:, 1]
        return 0.5 * q1**2 / self.scale**2 + 0.5 * (q2 - self.twist * (q1**2 - self.scale**2)) ** 2

    def _sample(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        y = torch.randn(num, 2, generator=generator, dtype=torch.float64)
        q1 = self.scale * y[:, 0]
        return torch.stack([q1, y[:, 1] + self.twist * (q1**2 - self.scale**2)], dim=-1)


class RingTarget(Target):
    """The configuration marginal of ``canonflow.systems.Ring2D``: ``U(q) = (|q| − R)²/s`` on ``ℝ²``.

    By symmetry ``E q = 0`` and ``Var q₁ = Var q₂ = E r²/2``, with ``E r²`` from the radial density
    ``∝ r e^{−(r−R)²/s}`` in closed form: for ``σ² = s/2``, ``E r² = (∫ r³ g)/(∫ r g)`` where the moments of the
    Gaussian ``g`` truncated to ``r > 0`` are computed exactly (``_radial_moments``). Exact samples come from
    ``Ring2D.sample_boltzmann``.
    """

    name = "ring2d"

    def __init__(self, radius: float = 2.0, scale: float = 0.32) -> None:
        self.system = Ring2D(radius, scale)
        self.dim = 2
        self.mean = torch.zeros(2, dtype=torch.float64)
        second = self._second_radial_moment()
        self.variance = torch.full((2,), second / 2, dtype=torch.float64)

    def _second_radial_moment(self) -> float:
        """``E r² = M₃/M₁`` with ``M_k = ∫_0^∞ r^k e^{−(r−μ)²/2σ²} dr`` from the truncated-normal moments
        ``I_k = ∫_{−μ/σ}^∞ zᵏ φ(z) dz``: ``I₀ = Φ(μ/σ)``, ``I₁ = φ(μ/σ)``,
        ``I_k = (−μ/σ)^{k−1} φ(μ/σ) + (k−1) I_{k−2}``."""
        mu, sigma = self.system.radius, math.sqrt(self.system.scale / 2)
        a = -mu / sigma
        phi = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        big_phi = 0.5 * math.erfc(a / math.sqrt(2))
        i = [big_phi, phi]
        for k in range(2, 4):
            i.append(a ** (k - 1) * phi + (k - 1) * i[k - 2])
        m1 = mu * i[0] + sigma * i[1]
        m3 = mu**3 * i[0] + 3 * mu**2 * sigma * i[1] + 3 * mu * sigma**2 * i[2] + sigma**3 * i[3]
        return m3 / m1

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.vector_norm(q, dim=-1)
        return (r - self.system.radius) ** 2 / self.system.scale

    def _sample(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.system.sample_boltzmann(num, generator=generator)[:, :2]


class GaussianMixture(Target):
    """Two isotropic Gaussians in 2D, ``π = w N(−c, σ²I) + (1 − w) N(c, σ²I)`` with ``c = (a, 0)``.

    ``U(q) = −log Σ_k w_k e^{−|q − c_k|²/2σ²}``. Exact moments: ``E q₁ = a(1 − 2w)``, ``E q₂ = 0``,
    ``Var q₁ = σ² + 4a²w(1 − w)``, ``Var q₂ = σ²``. Defaults ``a = 4``, ``σ = 0.7``, ``w = 0.3``: the barrier
    between the modes is ``≈ a²/2σ² ≈ 16`` nats, so gradient-based chains never cross it. ``mode_of(q)``
    labels draws by the sign of ``q₁`` (0: left mode, weight ``w``).
    """

    name = "mixture"

    def __init__(self, separation: float = 4.0, sigma: float = 0.7, weight: float = 0.3) -> None:
        if not 0 < weight < 1:
            raise ValueError(f"GaussianMixture: expected 0 < weight < 1, got {weight}")
        self.dim = 2
        self.separation, self.sigma, self.weight = float(separation), float(sigma), float(weight)
        a, w = self.separation, self.weight
        self.mean = torch.tensor([a * (1 - 2 * w), 0.0], dtype=torch.float64)
        self.variance = torch.tensor([sigma**2 + 4 * a**2 * w * (1 - w), sigma**2], dtype=torch.float64)
        self.weights = torch.tensor([w, 1 - w], dtype=torch.float64)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        centres = q.new_tensor([[-self.separation, 0.0], [self.separation, 0.0]])
        squared = (q[:, None, :] - centres).pow(2).sum(-1)
        log_w = torch.log(self.weights.to(q))
        return -torch.logsumexp(log_w - 0.5 * squared / self.sigma**2, dim=-1)

    def mode_of(self, q: torch.Tensor) -> torch.Tensor:
        """``0`` for draws in the left mode (``q₁ < 0``), ``1`` otherwise; shape of ``q[..., 0]``."""
        return (q[..., 0] >= 0).long()

    def _sample(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        right = torch.rand(num, generator=generator, dtype=torch.float64) >= self.weight
        centre = torch.where(right, self.separation, -self.separation)
        q = self.sigma * torch.randn(num, 2, generator=generator, dtype=torch.float64)
        q[:, 0] += centre
        return q

    def initial(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Over-dispersed starts ``N(0, (a/2)² I)`` that straddle both modes."""
        return super().initial(num, generator) * self.separation / 2


class IllConditionedGaussian(Target):
    """A rotated Gaussian ``N(0, Σ)`` in ``d`` dimensions with condition number ``κ``: ``Σ = R Λ Rᵀ``.

    ``Λ`` has eigenvalues log-spaced on ``[1, κ]`` and ``R`` is a fixed random rotation (QR of a Gaussian
    matrix drawn with ``seed``), so a diagonal mass matrix cannot undo the conditioning.
    ``U(q) = qᵀ Σ⁻¹ q / 2``; exact ``E q = 0`` and ``Var q = diag Σ``. Defaults ``d = 50``, ``κ = 1000``.
    """

    name = "ill_gaussian"

    def __init__(self, dim: int = 50, condition: float = 1000.0, seed: int = 0) -> None:
        self.dim = check_positive_int(dim, "dim", "IllConditionedGaussian")
        generator = torch.Generator().manual_seed(seed)
        matrix = torch.randn(self.dim, self.dim, generator=generator, dtype=torch.float64)
        rotation, upper = torch.linalg.qr(matrix)
        self.rotation = rotation * torch.sign(torch.diagonal(upper))
        self.eigenvalues = torch.logspace(0.0, math.log10(condition), self.dim, dtype=torch.float64)
        self.covariance = self.rotation @ torch.diag(self.eigenvalues) @ self.rotation.T
        self.precision = self.rotation @ torch.diag(1 / self.eigenvalues) @ self.rotation.T
        self.mean = torch.zeros(self.dim, dtype=torch.float64)
        self.variance = torch.diagonal(self.covariance).clone()

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((q @ self.precision.to(q)) * q).sum(-1)

    def _sample(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(num, self.dim, generator=generator, dtype=torch.float64)
        return (z * self.eigenvalues.sqrt()) @ self.rotation.T


TARGETS: dict[str, Callable[[], Target]] = {
    "funnel": Funnel,
    "banana": Banana,
    "ring2d": RingTarget,
    "mixture": GaussianMixture,
    "ill_gaussian": IllConditionedGaussian,
}


def get_target(name: str, **kwargs: object) -> Target:
    """Build the target called ``name`` (one of ``TARGETS``) with keyword arguments for its constructor."""
    if name not in TARGETS:
        raise KeyError(f"unknown target {name!r}; available targets: {', '.join(sorted(TARGETS))}")
    return TARGETS[name](**kwargs)
