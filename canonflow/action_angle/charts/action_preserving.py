"""Learned canonical layers that conserve actions and keep winding numbers, for use after a fixed chart.

After a chart that puts every torus in the right winding class (and, for a symmetry, turns it into rotations of
the last planes), the learned layers must not undo it: :class:`ActionShear` and :class:`ActionTwist` are exact
time-one flows of Hamiltonians that depend on the actions of some planes only, so they conserve those actions
and turn their planes about their origins; the anchored fields fix the origins of the free planes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from canonflow.action_angle.charts.fixed import turn
from canonflow.nn.fields import IrrotationalMLP
from canonflow.phase_space import join, split
from canonflow.transforms import SymplecticComposite
from canonflow.transforms.base import SymplecticTransform
from canonflow.validation import check_non_negative_int, check_positive_int

__all__ = [
    "ActionShear",
    "ActionTwist",
    "AnchoredField",
    "ScaledAnchoredField",
    "ScaledTwistField",
    "action_shear_flow",
    "winding_flow",
]


class ActionShear(SymplecticTransform):
    """A shear of the first ``m`` planes that depends on, and exactly conserves, the actions of the other ones.

    Planes ``1..m`` hold ``(u, v)`` (positions and momenta), planes ``m+1..n`` the Cartesian pairs
    ``(Q_j, P_j)`` with actions ``J_j = (Q_j² + P_j²)/2`` (with ``first = f > 0`` the free planes are
    ``f+1..f+m`` instead and all others are action planes). With a scalar ``F(w, J)`` (``field`` maps
    ``(w, J) ∈ ℝ^{m + (n−m)}`` to ``∇F``, a gradient field such as :class:`AnchoredField` or ``IrrotationalMLP``), the
    layer is the exact time-one flow of the Hamiltonian ``F``:

    * ``kind="momentum"`` (``w = u``): ``v ← v − ∂F/∂u``;
    * ``kind="position"`` (``w = v``): ``u ← u + ∂F/∂v``;

    and in both cases every plane ``j > m`` turns clockwise by the angle ``∂F/∂J_j``:
    ``Q_j + iP_j ← e^{−i ∂F/∂J_j} (Q_j + iP_j)``. ``w`` and ``J`` are constant along that flow, so the update
    is exact and canonical, its inverse flips the signs, and the actions ``J`` are conserved to rounding.
    After a chart that turns a continuous symmetry into rotations of the last planes (e.g. :class:`KeplerChart`
    with ``m = 1``: plane 2 is the angular momentum ``G`` and the orbit's orientation), a stack of these
    layers is the general symmetric canonical map: a ``J``-dependent area-preserving map of the first ``m``
    planes with the rotation of the others that canonicity requires.
    """

    def __init__(self, n: int, m: int, field: nn.Module, kind: str, first: int = 0) -> None:
        super().__init__(n)
        if not 0 < check_positive_int(m, "m", "ActionShear") < n:
            raise ValueError(f"ActionShear: expected 0 < m < n = {n}, got m = {m}")
        if kind not in ("momentum", "position"):
            raise ValueError(f"ActionShear: kind must be 'momentum' or 'position', got {kind!r}")
        if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first <= n - m:
            raise ValueError(f"ActionShear: expected 0 <= first <= n - m = {n - m}, got first = {first!r}")
        self.m, self.kind, self.field, self.first = m, kind, field, first
        order = list(range(first, first + m)) + [k for k in range(n) if not first <= k < first + m]
        self.register_buffer("order", torch.tensor(order), persistent=False)
        self.register_buffer("restore", torch.argsort(torch.tensor(order)), persistent=False)

    def extra_repr(self) -> str:
        return f"n={self.n}, m={self.m}, first={self.first}, kind={self.kind!r}"

    def _flow(self, x: torch.Tensor, sign: float) -> torch.Tensor:
        q, p = split(x)
        q, p = q[:, self.order], p[:, self.order]
        m = self.m
        big_q, big_p = q[:, m:], p[:, m:]
        free = q[:, :m] if self.kind == "momentum" else p[:, :m]
        gradient = self.field(torch.cat([free, 0.5 * (big_q * big_q + big_p * big_p)], -1))
        turned_q, turned_p = turn(big_q, big_p, sign * gradient[:, m:])
        u, v = q[:, :m], p[:, :m]
        if self.kind == "momentum":
            v = v - sign * gradient[:, :m]
        else:
            u = u + sign * gradient[:, :m]
        return join(torch.cat([u, turned_q], -1)[:, self.restore], torch.cat([v, turned_p], -1)[:, self.restore])

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._flow(x, 1.0)

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._flow(x, -1.0)


class ActionTwist(SymplecticTransform):
    """A twist: every plane ``k`` turns by an angle that depends on all the actions, ``(B, 2n) -> (B, 2n)``.

    With a scalar ``A(J)`` of the actions ``J_k = (Q_k² + P_k²)/2`` (``field`` maps ``J ∈ ℝⁿ`` to ``∇A``, a
    gradient field such as ``IrrotationalMLP``), the layer is the exact time-one flow of the Hamiltonian ``A``:
    ``Q_k + iP_k ← e^{−i ∂A/∂J_k} (Q_k + iP_k)`` for every ``k``. The actions are constant along that flow, so the
    update is exact and canonical, its inverse flips the sign of the angles, and every action is conserved to
    rounding. Each plane is turned about its origin, so the layer fixes every origin and, along any closed
    curve, adds to each plane's angle a function that returns to its value: winding numbers around the origins
    are conserved. Interleaved with :class:`ActionShear` layers (which move points along straight lines of
    one plane) it gives radius-dependent rotations that shears can build only from many compositions.
    """

    def __init__(self, n: int, field: nn.Module) -> None:
        super().__init__(check_positive_int(n, "n", "ActionTwist"))
        self.field = field

    def _flow(self, x: torch.Tensor, sign: float) -> torch.Tensor:
        q, p = split(x)
        return join(*turn(q, p, sign * self.field(0.5 * (q * q + p * p))))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._flow(x, 1.0)

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return self._flow(x, -1.0)


class AnchoredField(nn.Module):
    """The gradient ``(∂F̃/∂w, ∂F̃/∂J)`` of ``F̃(w, J) = F(w, J) − w·∂_w F(0, J)``, ``(B, m + s) -> (B, m + s)``.

    ``F`` is the potential of an ``IrrotationalMLP``-shaped network, ``∇F(x) = W₁ᵀ tanh(w₂ ⊙ tanh(W₁x + b₁) + b₂)``
    with Hessian ``W₁ᵀ diag(tanh'(h₂) ⊙ w₂ ⊙ tanh'(h₁)) W₁`` in closed form, so
    ``∂F̃/∂w = ∂_w F(w, J) − ∂_w F(0, J)`` and ``∂F̃/∂J = ∂_J F(w, J) − ∂²_{Jw} F(0, J) w`` cost two passes of the
    network and no autograd. ``∂F̃/∂w`` vanishes at ``w = 0`` for every ``J``: an :class:`ActionShear` with
    this field fixes the origin of planes ``1..m`` (for ``m = 1``: it is a homeomorphism of the punctured
    plane at every ``J``, so the winding number of every latent curve around the origin is conserved, and
    training can neither unwind a loop nor squeeze it into an arc). Starts at ``F̃ = 0`` (``w₂ = 0``).
    """

    def __init__(self, m: int, s: int, hidden: int = 64) -> None:
        super().__init__()
        self.m, self.s = check_positive_int(m, "m", "AnchoredField"), check_positive_int(s, "s", "AnchoredField")
        check_positive_int(hidden, "hidden", "AnchoredField")
        self.w1 = nn.Parameter(torch.randn(hidden, m + s) / (m + s) ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.zeros(hidden))
        self.b2 = nn.Parameter(torch.zeros(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m
        free = x[:, :m]
        anchor = torch.cat([torch.zeros_like(free), x[:, m:]], -1)
        inner = torch.tanh(torch.cat([x, anchor]) @ self.w1.T + self.b1)
        outer = torch.tanh(self.w2 * inner + self.b2)
        gradient, at_anchor = (outer @ self.w1).chunk(2)
        curvature = (1 - outer[len(x) :] ** 2) * self.w2 * (1 - inner[len(x) :] ** 2)  # (B, hidden) at w = 0
        mixed = torch.einsum("bh,hm,bm->bh", curvature, self.w1[:, :m], free) @ self.w1[:, m:]  # ∂²F/∂J∂w · w
        return torch.cat([gradient[:, :m] - at_anchor[:, :m], gradient[:, m:] - mixed], -1)


def _log_cosh(x: torch.Tensor) -> torch.Tensor:
    """``log cosh x``, stable for large ``|x|``."""
    magnitude = x.abs()
    return magnitude + torch.log1p(torch.exp(-2 * magnitude)) - math.log(2.0)


class ScaledAnchoredField(nn.Module):
    """The gradient ``(∂F/∂w, ∂F/∂J)`` of ``F(w, J) = J Φ̃(w/√J, J)``, ``(B, 2) -> (B, 2)`` (one free coordinate
    ``w``, one action ``J > 0``), for :class:`ActionShear` after a chart whose free plane scales as ``√J``.

    ``Φ(s, J) = Σ_h a_h log cosh(W_h · (s, J) + b_h)`` (closed-form value and gradient, no autograd) is anchored,
    ``Φ̃(s, J) = Φ(s, J) − Φ(0, J) − s ∂_sΦ(0, J)``, so ``∂F/∂w = √J ∂_sΦ̃(w/√J, J)`` vanishes at ``w = 0`` for every
    ``J`` and the shear fixes the origin of the free plane, as with :class:`AnchoredField`. ``∂F/∂J =
    Φ̃ − (s/2) ∂_sΦ̃ + J ∂_JΦ̃`` is exact. Why the scaling: after :class:`KeplerChart` the radial loop of an orbit of
    eccentricity ``e`` and angular momentum ``G`` is ``√G c_e`` with ``c_e`` independent of ``G`` (Kepler's
    scaling symmetry), so the exact radial map is ``x ↦ √G T(x/√G)`` for one map ``T``; with this field a shear of
    that form needs no ``J`` dependence (``W_{h,J} = 0``), which a network of ``(w, J)`` can only approximate.
    The ``J`` input keeps the family general. Starts at ``F = 0`` (``a = 0``).
    """

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        check_positive_int(hidden, "hidden", "ScaledAnchoredField")
        self.w = nn.Parameter(torch.randn(hidden, 2) / 2**0.5)
        self.b = nn.Parameter(0.5 * torch.randn(hidden))
        self.a = nn.Parameter(torch.zeros(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        free, action = x[:, :1], x[:, 1:]
        root = torch.sqrt(action)
        s = free / root
        w_s, w_j = self.w[:, 0], self.w[:, 1]
        anchor = action * w_j + self.b  # pre-activations at s = 0, (B, hidden)
        z = s * w_s + anchor
        t, t0 = torch.tanh(z), torch.tanh(anchor)
        slope0 = (self.a * w_s * t0).sum(-1, keepdim=True)  # ∂_sΦ(0, J)
        value = (self.a * (_log_cosh(z) - _log_cosh(anchor))).sum(-1, keepdim=True) - s * slope0  # Φ̃
        d_s = (self.a * w_s * t).sum(-1, keepdim=True) - slope0  # ∂_sΦ̃
        mixed0 = (self.a * w_s * w_j * (1 - t0 * t0)).sum(-1, keepdim=True)  # ∂²_{sJ}Φ(0, J)
        d_j = (self.a * w_j * (t - t0)).sum(-1, keepdim=True) - s * mixed0  # ∂_JΦ̃
        return torch.cat([root * d_s, value - 0.5 * s * d_s + action * d_j], -1)


class ScaledTwistField(nn.Module):
    """The gradient ``(∂A/∂I, ∂A/∂J)`` of ``A(I, J) = J α(I/J, J) + c I``, ``(B, 2) -> (B, 2)``, for
    :class:`ActionTwist` on two planes (actions ``I`` of the free plane and ``J > 0`` of the symmetry plane).

    ``α(y, J) = Σ_h a_h log cosh(W_h · (y, J) + b_h)``. The free plane turns by ``∂A/∂I = ∂_yα(I/J, J) + c``, the
    symmetry plane by ``∂A/∂J = α − y ∂_yα + J ∂_Jα``. With :class:`KeplerChart` the radial action of an orbit
    is ``G`` times a function of the eccentricity, so a twist of that form needs no ``J`` dependence
    (``W_{h,J} = 0``); the ``J`` input keeps the family general. Starts at ``A = 0``.
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        check_positive_int(hidden, "hidden", "ScaledTwistField")
        self.w = nn.Parameter(torch.randn(hidden, 2) / 2**0.5)
        self.b = nn.Parameter(0.5 * torch.randn(hidden))
        self.a = nn.Parameter(torch.zeros(hidden))
        self.c = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        free, action = x[:, :1], x[:, 1:]
        y = free / action
        z = y * self.w[:, 0] + action * self.w[:, 1] + self.b
        t = torch.tanh(z)
        value = (self.a * _log_cosh(z)).sum(-1, keepdim=True)
        d_y = (self.a * self.w[:, 0] * t).sum(-1, keepdim=True)
        d_j = (self.a * self.w[:, 1] * t).sum(-1, keepdim=True)
        return torch.cat([d_y + self.c, value - y * d_y + action * d_j], -1)


def winding_flow(n: int, blocks: int, hidden: int = 64) -> SymplecticComposite:
    """``blocks`` sweeps over the planes ``k = 1..n`` of :class:`ActionShear` pairs (momentum, then position) with
    plane ``k`` free (``m = 1``) and an :class:`AnchoredField`: a learned canonical map that keeps the winding
    number of every closed curve around the origin of every plane, for any ``n``.

    Each layer is a homeomorphism of the punctured plane ``k`` at fixed actions of the others (the anchored
    field fixes its origin) and turns every other plane by an angle that returns to its value around a closed
    curve, without changing its radius. So a flow started at a chart in the right winding class (e.g.
    :func:`normal_mode_chart`) cannot unwind a latent curve or squeeze it into an arc of a circle, the
    degenerate minimizers of the circle loss that a generic flow finds on Calogero–Moser.
    """
    check_positive_int(blocks, "blocks", "winding_flow")
    if check_positive_int(n, "n", "winding_flow") < 2:
        raise ValueError(f"winding_flow: needs n >= 2 planes, got n = {n}")
    kinds = ("momentum", "position")
    layers = [
        ActionShear(n, 1, AnchoredField(1, n - 1, hidden), kind, first=k)
        for _ in range(blocks)
        for k in range(n)
        for kind in kinds
    ]
    return SymplecticComposite(layers)


def action_shear_flow(
    n: int, m: int, blocks: int, hidden: int = 64, *, scaled: bool = False, twist: int = 0
) -> SymplecticComposite:
    """``blocks`` pairs of :class:`ActionShear` (momentum, then position), each with an :class:`AnchoredField`.

    Every layer starts as the identity, conserves the actions of planes ``m+1..n`` and fixes the origin of
    planes ``1..m`` at every value of those actions. ``scaled=True`` (``n = 2``, ``m = 1``) uses
    :class:`ScaledAnchoredField` instead (``F(w, J) = J Φ̃(w/√J, J)``, for :class:`KeplerChart`). ``twist = h > 0``
    puts an :class:`ActionTwist` before each pair, with a ``ScaledTwistField(h)`` if ``scaled`` and an
    ``IrrotationalMLP(n, h)`` of all the actions otherwise: it turns every plane about its origin by an angle
    that depends on the actions, so the flow still conserves the last planes' actions and keeps every winding
    number.
    """
    who = "action_shear_flow"
    check_positive_int(blocks, "blocks", who)
    check_non_negative_int(twist, "twist (the hidden width of the twist fields)", who)
    if scaled and (n, m) != (2, 1):
        raise ValueError(f"{who}: scaled=True needs n = 2 and m = 1, got n = {n}, m = {m}")

    def shear_field() -> nn.Module:
        return ScaledAnchoredField(hidden) if scaled else AnchoredField(m, n - m, hidden)

    def twist_field() -> nn.Module:
        return ScaledTwistField(twist) if scaled else IrrotationalMLP(n, twist)

    layers: list[SymplecticTransform] = []
    for _ in range(blocks):
        if twist:
            layers.append(ActionTwist(n, twist_field()))
        layers.extend(ActionShear(n, m, shear_field(), kind) for kind in ("momentum", "position"))
    return SymplecticComposite(layers)
