"""Birkhoff normal-form charts: an affine normal-mode chart followed by exact polynomial Lie transforms.

Near a stable equilibrium with commensurate frequencies, :func:`birkhoff_chart` removes the non-resonant terms
of ``H`` order by order (degrees ``3..order``) with generators written as sums of ridge powers, whose time-one
flows are exact canonical shears; :class:`BirkhoffChart` is the resulting fixed chart, rebuilt from its config.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from canonflow.action_angle.charts.fixed import AffineChart, normal_mode_chart, turn
from canonflow.phase_space import join, split, symplectic_form
from canonflow.systems import HamiltonianSystem
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_non_negative_int, validation

__all__ = ["BirkhoffChart", "birkhoff_chart", "taylor_part"]


class BirkhoffChart(SymplecticTransform):
    """An affine chart followed by Lie transforms of polynomial generators, ``(B, 2n) -> (B, 2n)``.

    ``forward`` (physical → chart) is ``x ↦ Ψ(S (x − c))`` with the affine part of :class:`AffineChart` and
    ``Ψ = Φ_{W_m}⁻¹ ∘ … ∘ Φ_{W_3}⁻¹``, where every generator ``W`` of ``generators`` (applied in list order) is a
    sum of ridge powers ``W(y) = Σ_j a_j (c_j · y)^k`` and ``Φ_W`` is the product ``Φ_{a_1} ∘ … ∘ Φ_{a_M}`` of
    their exact time-one flows. The flow of ``a (c · y)^k`` (Hamilton's equations ``ẏ = Ω∇W``) leaves
    ``c · y`` constant (``c · Ωc = 0``), so it is the shear ``y ↦ y + k a (c · y)^{k−1} Ωc``: exact, canonical,
    with the inverse ``y ↦ y − k a (c · y)^{k−1} Ωc``. The composition therefore is an exact canonical map for any
    coefficients; :func:`birkhoff_chart` chooses them so that ``Φ_W`` is a Lie (Birkhoff) normalizing transform:
    with ``W_k`` of degree ``k``, ``H ∘ (chart)⁻¹`` has no non-resonant terms of degree ``3..m`` at the origin.

    ``generators`` is a list of ``{"power": k, "directions": (M, 2n) nested lists, "coefficients": (M,) list}``,
    stored in the model's config so that a saved model rebuilds the chart. Defined everywhere (a polynomial map
    with a polynomial inverse).
    """

    def __init__(self, centre: list | torch.Tensor, matrix: list | torch.Tensor, generators: list[dict]) -> None:
        affine = AffineChart(centre, matrix)
        super().__init__(affine.n)
        self.affine = affine
        size = 2 * self.n
        omega = symplectic_form(self.n, dtype=torch.float64)
        directions, coefficients, powers = [], [], []
        if not isinstance(generators, (list, tuple)):
            raise ValueError(f"BirkhoffChart: expected generators as a list of dicts, got {type(generators).__name__}")
        for generator in generators:
            if not isinstance(generator, dict) or set(generator) != {"power", "directions", "coefficients"}:
                raise ValueError("BirkhoffChart: every generator needs exactly 'power', 'directions', 'coefficients'")
            power = generator["power"]
            if check_non_negative_int(power, "power", "BirkhoffChart") < 2:
                raise ValueError(f"BirkhoffChart: expected an int power >= 2, got {power!r}")
            direction = torch.as_tensor(generator["directions"], dtype=torch.float64).reshape(-1, size)
            coefficient = torch.as_tensor(generator["coefficients"], dtype=torch.float64).reshape(-1)
            if len(direction) != len(coefficient):
                raise ValueError("BirkhoffChart: a generator needs as many directions as coefficients")
            if not (torch.isfinite(direction).all() and torch.isfinite(coefficient).all()):
                raise ValueError("BirkhoffChart: directions and coefficients must be finite")
            # forward applies Φ_W⁻¹, i.e. the terms' inverse shears in reverse order
            directions.append(direction.flip(0))
            coefficients.append(coefficient.flip(0))
            powers.extend([power] * len(coefficient))
        direction = torch.cat(directions) if directions else torch.zeros(0, size, dtype=torch.float64)
        self.register_buffer("directions", direction)
        self.register_buffer("kicks", direction @ omega.T)  # rows Ωc_j
        self.register_buffer("coefficients", torch.cat(coefficients) if coefficients else torch.zeros(0))
        self.powers = powers

    def _shear(self, y: torch.Tensor, j: int, sign: float) -> torch.Tensor:
        # ``y + (sign k a_j) (c_j · y)^{k−1} Ωc_j``, the products written as matrix products with an inner
        # dimension of 1: the same single-rounded products as elementwise ones (identical results), but under
        # the nested forward-mode derivatives of ``taylor_part`` a broadcast elementwise product goes through
        # torch's Python reference implementation, and the matrix products run about 8x faster.
        power = self.powers[j]
        along = (y @ self.directions[j]).unsqueeze(-1) ** (power - 1)
        return y + (along @ (sign * power * self.coefficients[j]).reshape(1, 1)) @ self.kicks[j].unsqueeze(0)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine.forward_map(x)
        for j in range(len(self.powers)):
            y = self._shear(y, j, -1.0)
        return y

    def inverse_map(self, z: torch.Tensor) -> torch.Tensor:
        for j in reversed(range(len(self.powers))):
            z = self._shear(z, j, 1.0)
        return self.affine.inverse_map(z)


def taylor_part(function: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, degree: int) -> torch.Tensor:
    """The homogeneous degree-``k`` part of ``function`` at the origin, ``(1/k!) dᵏ/dtᵏ f(t y)|_{t=0}``, at ``points``.

    Nested forward-mode derivatives (exact to rounding; the cost grows like ``2ᵏ``).
    """

    def derivative(inner: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda t: torch.func.jvp(inner, (t,), (torch.ones_like(t),))[1]

    along: Callable[[torch.Tensor], torch.Tensor] = lambda t: function(t.unsqueeze(-1) * points)  # noqa: E731
    for _ in range(degree):
        along = derivative(along)
    return along(points.new_zeros(len(points))) / math.factorial(degree)


def birkhoff_chart(
    system: HamiltonianSystem,
    centre: list | torch.Tensor,
    circular: list | tuple = (),
    order: int = 4,
    seed: int = 0,
) -> dict[str, object]:
    """The :class:`BirkhoffChart` spec ``{"name": "birkhoff", "centre", "matrix", "generators"}`` that normalizes
    ``H`` at an equilibrium to degree ``order`` (Lie transforms of degrees ``3..order``).

    Starts from :func:`normal_mode_chart` (``centre``, ``circular`` as there), in which the quadratic part is
    ``H₂ = Σ_k ω_k (Q_k² + P_k²)/2``; the frequencies must be integer multiples ``ω_k = m_k ω`` of the lowest one
    (equal ones, as the 1 : 1 resonance at the bottom of the periodic Toda lattice of three particles seen from
    its centre of mass, or ``1 : 2 : 3`` at the Calogero–Moser equilibrium), so the ``H₂`` flow is periodic with
    period ``2π/ω`` and its average is exact on ``2 k max m_k + 2`` equally spaced times. For ``k = 3..order``, with
    ``K = H ∘ (chart so far)⁻¹`` and ``V_k`` its degree-``k`` Taylor part at the origin, the generator ``W_k`` solves
    the homological equation ``{H₂, W_k} = ⟨V_k⟩ − V_k`` (``⟨·⟩`` the average over the ``H₂`` flow: the resonant part,
    which no transform can remove, and which is all that stays); ``W_k`` is written as ``Σ_j a_j (c_j · y)^k`` on
    ``2 × C(k + 2n − 1, k)`` random unit directions ``c_j`` (drawn with ``seed``), which span the degree-``k``
    polynomials, and the ``a_j`` are the least-squares solution on random points. The next degree is computed
    from the composed chart, so the errors of the product-of-flows realization are absorbed order by order.
    Odd degrees are entirely non-resonant under a 1 : 1 resonance. The polynomial shears grow fast away from
    the origin: beyond the region where the normal-form series converges (on Calogero–Moser at degree 5: some
    orbits of the benchmark region) the chart sends points far out, so check the held-out metrics per degree.

    Why: on Toda's loop orbits the normal-mode chart's plane of the small circular polarization carries the
    forced response ``∝ z̄₊²`` of the cubic term, whose winding differs from that of the torus' own small
    oscillation; the normalized chart removes it (with its ``O(|z|²)`` companions), and its actions are
    conserved to a few ``10⁻³`` on low-energy loops before any training. Raises if the frequencies are not
    integer multiples of the lowest, or if a homological equation is not solved to ``1e-8`` (relative). Costs
    seconds for ``order = 4`` and grows quickly with ``order`` (nested derivatives).
    """
    who = "birkhoff_chart"
    if check_non_negative_int(order, "order", who) < 2:
        raise ValueError(f"{who}: expected an int order >= 2, got {order!r}")
    affine = normal_mode_chart(system, centre, circular)
    chart = BirkhoffChart(affine["centre"], affine["matrix"], [])
    n, size = system.n, 2 * system.n

    def energy(y: torch.Tensor) -> torch.Tensor:
        with validation(False):
            return system.hamiltonian(chart.inverse_map(y))

    hessian = torch.func.hessian(lambda y: energy(y.unsqueeze(0)).sum())(torch.zeros(size, dtype=torch.float64))
    frequencies = hessian.diagonal()[:n]
    base = float(frequencies.min())
    multiples = torch.round(frequencies / base)
    diagonal = torch.diag(torch.cat([frequencies, frequencies]))
    if base <= 0 or float((hessian - diagonal).abs().max()) > 1e-8 * float(frequencies.max()):
        raise ValueError(f"{who}: H is not Σ ω_k (Q_k² + P_k²)/2 with ω_k > 0 at the centre in the normal-mode chart")
    if float((frequencies / base - multiples).abs().max()) > 1e-8:
        raise ValueError(
            f"{who}: the normal-mode frequencies {frequencies.tolist()} are not integer multiples of the lowest"
        )
    rate = torch.cat([frequencies, frequencies])  # ∇H₂ = rate ⊙ y
    form = symplectic_form(n, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    generators: list[dict] = []
    for degree in range(3, order + 1):
        count = 2 * math.comb(degree + size - 1, degree)
        directions = torch.randn(count, size, generator=generator, dtype=torch.float64)
        directions = directions / directions.norm(dim=1, keepdim=True)
        points = torch.randn(4 * count, size, generator=generator, dtype=torch.float64)
        turns = 2 * degree * int(multiples.max()) + 2  # exact average of harmonics up to degree · max ω_k/ω
        q, p = split(points)
        # the H₂ flow over one period: plane k turns m_k times
        rotated = [join(*turn(q, p, multiples * (2 * math.pi * m / turns))) for m in range(turns)]
        parts = taylor_part(energy, torch.cat(rotated), degree).reshape(turns, -1)
        target = parts.mean(0) - parts[0]  # ⟨V_k⟩ − V_k
        along = points @ directions.T
        system_matrix = ((rate * points) @ form @ directions.T) * degree * along ** (degree - 1)  # {H₂, (c·y)^k}
        solution = torch.linalg.lstsq(system_matrix, target.unsqueeze(-1)).solution.squeeze(-1)
        residual = float((system_matrix @ solution - target).abs().max() / target.abs().max().clamp_min(1e-300))
        if residual > 1e-8:
            raise ValueError(f"{who}: the degree-{degree} homological equation is not solved (residual {residual:.1e})")
        generators.append({"power": degree, "directions": directions.tolist(), "coefficients": solution.tolist()})
        chart = BirkhoffChart(affine["centre"], affine["matrix"], generators)
    return {"name": "birkhoff", "centre": affine["centre"], "matrix": affine["matrix"], "generators": generators}
