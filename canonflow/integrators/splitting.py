"""Explicit splitting methods for a separable ``H(q, p) = T(p) + V(q)``: symplectic Euler, leapfrog, Yoshida.

Each step is a composition of the exact flows of ``V`` (a kick ``p ← p − h ∂H/∂q``) and of ``T`` (a drift
``q ← q + h ∂H/∂p``), which are canonical shears; so every method here is exactly symplectic. The leapfrog
(Störmer–Verlet) step is symmetric, and so are the compositions ``Φ_{w_k h} ∘ … ∘ Φ_{w_1 h}`` of leapfrog steps
with palindromic weights (Yoshida 1990). Consecutive half kicks share one evaluation of ``∂H/∂q``: the step
functions pass it on as their ``carry``. A Hamiltonian that declares its parts (``has_separable_parts``: a learned
``K_θ(p) + V_θ(q)``) has each kick take ``∂V/∂q`` from ``V`` alone and each drift ``∂K/∂p`` from ``K`` alone.
The step functions act on the halves ``q`` and ``p`` (``Method.split_step``): ``integrate`` keeps them apart
through a whole run and joins them once.
"""

from __future__ import annotations

import torch

from canonflow.integrators.base import (
    Hamiltonian,
    HamiltonianGradient,
    Method,
    SplitStepFunction,
    StepSize,
    integrate,
)

__all__ = [
    "LEAPFROG",
    "SYMPLECTIC_EULER",
    "YOSHIDA4",
    "YOSHIDA6",
    "leapfrog",
    "symplectic_euler",
    "yoshida4",
    "yoshida6",
]


def _symplectic_euler_step(
    gradient: HamiltonianGradient, q: torch.Tensor, p: torch.Tensor, h: StepSize, carry: None, k: int
) -> tuple[torch.Tensor, torch.Tensor, None]:
    """``p' = p − h ∂H/∂q(q, p)``, then ``q' = q + h ∂H/∂p(q, p')``."""
    p = p - h * gradient.position_gradient(q, p)
    q = q + h * gradient.momentum_gradient(q, p)
    return q, p, None


def _shift(z: torch.Tensor, c: StepSize, v: torch.Tensor) -> torch.Tensor:
    """``z + c v``: one fused operation (one autograd node) for a float ``c``, else a product and a sum."""
    return torch.add(z, v, alpha=c) if isinstance(c, float) else z + c * v


def _composition(weights: tuple[float, ...]) -> SplitStepFunction:
    """The split step function of ``Φ_{w_k h} ∘ … ∘ Φ_{w_1 h}``, ``Φ`` one leapfrog (kick-drift-kick) step."""

    def step(
        gradient: HamiltonianGradient,
        q: torch.Tensor,
        p: torch.Tensor,
        h: StepSize,
        carry: torch.Tensor | None,
        k: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dv = gradient.position_gradient(q, p) if carry is None else carry  # ∂H/∂q at the current q
        for w in weights:
            s = w * h
            p = _shift(p, -0.5 * s, dv)
            q = _shift(q, s, gradient.momentum_gradient(q, p))
            dv = gradient.position_gradient(q, p)
            p = _shift(p, -0.5 * s, dv)
        return q, p, dv

    return step


def _splitting(name: str, order: int, split_step: SplitStepFunction, symmetric: bool = True) -> Method:
    """The ``Method`` of an explicit splitting method from its split step (``step`` joins and splits ``x``)."""

    def step(
        gradient: HamiltonianGradient, x: torch.Tensor, h: StepSize, carry: object, k: int, **options: object
    ) -> tuple[torch.Tensor, object]:
        n = x.shape[-1] // 2
        q, p, carry = split_step(gradient, x[:, :n], x[:, n:], h, carry, k, **options)
        return torch.cat([q, p], -1), carry

    return Method(name, order, step, separable=True, symplectic=True, symmetric=symmetric, split_step=split_step)


_CBRT2 = 2.0 ** (1.0 / 3.0)
_Y6_W1, _Y6_W2, _Y6_W3 = -1.17767998417887, 0.235573213359357, 0.784513610477560
_Y6_W0 = 1.0 - 2.0 * (_Y6_W1 + _Y6_W2 + _Y6_W3)

SYMPLECTIC_EULER = _splitting("symplectic_euler", 1, _symplectic_euler_step, symmetric=False)
LEAPFROG = _splitting("leapfrog", 2, _composition((1.0,)))
YOSHIDA4 = _splitting(
    "yoshida4", 4, _composition((1.0 / (2.0 - _CBRT2), -_CBRT2 / (2.0 - _CBRT2), 1.0 / (2.0 - _CBRT2)))
)
YOSHIDA6 = _splitting("yoshida6", 6, _composition((_Y6_W3, _Y6_W2, _Y6_W1, _Y6_W0, _Y6_W1, _Y6_W2, _Y6_W3)))


def symplectic_euler(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Symplectic Euler (variant "kick then drift") for a separable ``H = T(p) + V(q)``; order 1, symplectic.

    One step: ``p' = p - h ∂H/∂q(q, p)``, then ``q' = q + h ∂H/∂p(q, p')``. It is the composition of two
    canonical shears, so it is exactly symplectic, but not symmetric: the map with ``-h`` is not its inverse.
    Returns ``(B, 2n)``, or ``(steps + 1, B, 2n)`` with ``trajectory=True``.
    """
    return integrate(SYMPLECTIC_EULER, hamiltonian, x0, step_size, steps, trajectory=trajectory)


def leapfrog(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Störmer–Verlet (leapfrog, kick-drift-kick) for a separable ``H = T(p) + V(q)``; order 2, symplectic.

    One step: ``p½ = p - h/2 ∂H/∂q(q)``, ``q' = q + h ∂H/∂p(p½)``, ``p' = p½ - h/2 ∂H/∂q(q')``. It is symmetric,
    so running it with ``-h`` from ``x_N`` returns ``x_0`` to round-off (time reversibility). The half kicks
    of consecutive steps share one gradient evaluation. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    return integrate(LEAPFROG, hamiltonian, x0, step_size, steps, trajectory=trajectory)


def yoshida4(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Yoshida's 4th-order "triple jump" for a separable ``H``: ``Φ_{w₁h} ∘ Φ_{w₀h} ∘ Φ_{w₁h}``, ``Φ`` = leapfrog.

    ``w₁ = 1 / (2 - 2^{1/3})``, ``w₀ = -2^{1/3} / (2 - 2^{1/3})`` (so ``2w₁ + w₀ = 1``). Symmetric and
    symplectic, global error ``O(h⁴)``. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    return integrate(YOSHIDA4, hamiltonian, x0, step_size, steps, trajectory=trajectory)


def yoshida6(
    hamiltonian: Hamiltonian, x0: torch.Tensor, step_size: StepSize, steps: int, *, trajectory: bool = False
) -> torch.Tensor:
    """Yoshida's 6th-order composition (solution A) of 7 leapfrog steps for a separable ``H``.

    ``Φ_{w₃h} Φ_{w₂h} Φ_{w₁h} Φ_{w₀h} Φ_{w₁h} Φ_{w₂h} Φ_{w₃h}`` with ``w₁ = -1.17767998417887``,
    ``w₂ = 0.235573213359357``, ``w₃ = 0.784513610477560``, ``w₀ = 1 - 2(w₁ + w₂ + w₃)`` (Yoshida 1990).
    Symmetric and symplectic, global error ``O(h⁶)``. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    return integrate(YOSHIDA6, hamiltonian, x0, step_size, steps, trajectory=trajectory)
