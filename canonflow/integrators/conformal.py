"""Conformally symplectic integrators for the damped equations ``ẋ = Ω∇H(x) − γ (0, p)``, ``γ ≥ 0``.

The damped (conformal Hamiltonian) equations ``q̇ = ∂H/∂p``, ``ṗ = −∂H/∂q − γ p`` are the sum of Hamilton's
equations and the friction ``ṗ = −γ p``, whose flow ``D_t(q, p) = (q, e^{−γt} p)`` is exact and contracts the
symplectic form, ``D_t^*ω = e^{−γt} ω``; so does the true flow (McLachlan & Perlmutter 2001). The Strang splitting

    ``Φ_h = D_{h/2} ∘ Ψ_h ∘ D_{h/2}``,

with ``Ψ_h`` a symplectic step (leapfrog for a separable ``H``, the implicit midpoint rule for any ``H``), is
conformally symplectic with the same rate, ``Φ_h^*ω = e^{−γh} ω`` (the energy-dissipation structure is kept exactly,
not only to ``O(hᵖ)``), of order 2 and symmetric (``Φ_{−h} = Φ_h⁻¹``). With ``γ = 0`` it is ``Ψ_h``.

The friction ``γ`` is the integrator's ``damping`` argument or, by default, the Hamiltonian's attribute ``damping``
(a float or a 0-dim tensor, e.g. that of ``canonflow.hamiltonian_learning.HamiltonianNet(damping=True)``, through
which gradients flow), or ``0`` for a Hamiltonian without one. ``damped_vector_field`` is the right-hand side.
"""

from __future__ import annotations

import torch

from canonflow.integrators.base import (
    Hamiltonian,
    HamiltonianGradient,
    Method,
    SplitStepFunction,
    StepFunction,
    StepSize,
    integrate,
)
from canonflow.integrators.midpoint import IMPLICIT_MIDPOINT
from canonflow.integrators.splitting import LEAPFROG
from canonflow.validation import check_positive_float, check_positive_int

__all__ = [
    "CONFORMAL_LEAPFROG",
    "CONFORMAL_MIDPOINT",
    "conformal_leapfrog",
    "conformal_midpoint",
    "damped_vector_field",
    "resolve_damping",
]


def resolve_damping(hamiltonian: object, damping: float | torch.Tensor | None, who: str) -> float | torch.Tensor:
    """The friction ``γ ≥ 0``: ``damping`` if given, else ``hamiltonian.damping`` if set, else ``0.0``.

    A float or a 0-dim tensor (kept as a tensor, so that gradients reach it). Raises a ``ValueError`` naming ``who``
    for a negative, non-finite or non-scalar ``γ``, or for a ``damping`` given to a Hamiltonian that has its own.
    """
    own = getattr(hamiltonian, "damping", None)
    if damping is not None and own is not None:
        raise ValueError(f"{who}: the Hamiltonian has its own damping; do not pass damping= as well")
    value = own if damping is None else damping
    if value is None:
        return 0.0
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not value.is_floating_point():
            raise ValueError(f"{who}: expected damping to be a scalar floating tensor, got shape {tuple(value.shape)}")
        number = float(value.detach())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise TypeError(f"{who}: expected damping to be a real number >= 0 or a scalar tensor, got {value!r}")
    if not number >= 0.0 or number == float("inf"):
        raise ValueError(f"{who}: expected a finite damping >= 0, got {number}")
    return value.reshape(()) if isinstance(value, torch.Tensor) else number


def damped_vector_field(
    hamiltonian: Hamiltonian, x: torch.Tensor, damping: float | torch.Tensor | None = None
) -> torch.Tensor:
    """``ẋ = Ω∇H(x) − γ (0, p) = (∂H/∂p, −∂H/∂q − γ p)``, shape ``(B, 2n)`` for ``x`` of shape ``(B, 2n)``.

    ``γ`` as in :func:`resolve_damping` (``0`` for a conservative Hamiltonian: Hamilton's equations). Differentiable
    in ``x``, in ``γ`` and in the parameters of ``H`` when grad mode is on.
    """
    who = "damped_vector_field"
    gamma = resolve_damping(hamiltonian, damping, who)
    field = HamiltonianGradient(hamiltonian, who).field(x)
    if isinstance(gamma, float) and gamma == 0.0:
        return field
    n = x.shape[-1] // 2
    return torch.cat([field[:, :n], field[:, n:] - gamma * x[:, n:]], dim=-1)


def _friction(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``D(q, p) = (q, factor · p)``."""
    n = x.shape[-1] // 2
    return torch.cat([x[:, :n], factor * x[:, n:]], dim=-1)


def _conformal(base: StepFunction) -> StepFunction:
    """The step function of ``D_{h/2} ∘ Ψ_h ∘ D_{h/2}``, ``Ψ`` the step function ``base``, ``D_t`` the friction flow.

    ``h`` may be a float, a 0-dim tensor or a ``(B, 1)`` tensor of per-row step sizes. The friction changes ``p``
    only, so a splitting method's carry (``∂H/∂q`` at the current ``q``) stays valid across it.
    """

    def step(
        gradient: HamiltonianGradient,
        x: torch.Tensor,
        h: StepSize,
        carry: object,
        k: int,
        *,
        damping: object,
        **options,
    ) -> tuple[torch.Tensor, object]:
        factor = torch.exp(-0.5 * torch.as_tensor(h, dtype=x.dtype, device=x.device) * damping)
        x, carry = base(gradient, _friction(x, factor), h, carry, k, **options)
        return _friction(x, factor), carry

    return step


def _conformal_split(base: SplitStepFunction) -> SplitStepFunction:
    """The split step function (``Method.split_step``) of ``D_{h/2} ∘ Ψ_h ∘ D_{h/2}`` for a split step ``base``:
    the friction scales ``p`` alone."""

    def step(
        gradient: HamiltonianGradient,
        q: torch.Tensor,
        p: torch.Tensor,
        h: StepSize,
        carry: object,
        k: int,
        *,
        damping: object,
        **options,
    ) -> tuple[torch.Tensor, torch.Tensor, object]:
        factor = torch.exp(-0.5 * torch.as_tensor(h, dtype=p.dtype, device=p.device) * damping)
        q, p, carry = base(gradient, q, factor * p, h, carry, k, **options)
        return q, factor * p, carry

    return step


CONFORMAL_LEAPFROG = Method(
    "conformal_leapfrog",
    2,
    _conformal(LEAPFROG.step),
    separable=True,
    symplectic=False,
    symmetric=True,
    dissipative=True,
    split_step=_conformal_split(LEAPFROG.split_step),
)
CONFORMAL_MIDPOINT = Method(
    "conformal_midpoint",
    2,
    _conformal(IMPLICIT_MIDPOINT.step),
    separable=False,
    symplectic=False,
    symmetric=True,
    dissipative=True,
)


def conformal_leapfrog(
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    step_size: StepSize,
    steps: int,
    *,
    trajectory: bool = False,
    damping: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """``D_{h/2} ∘ leapfrog_h ∘ D_{h/2}`` for ``ẋ = Ω∇H − γ(0, p)`` with a separable ``H = K(p) + V(q)``.

    ``D_t(q, p) = (q, e^{−γt} p)``; ``γ`` from ``damping`` or ``hamiltonian.damping`` (default ``0``: leapfrog).
    Conformally symplectic (``Φ_h^*ω = e^{−γh}ω``), symmetric, order 2. Returns ``(B, 2n)`` or, with
    ``trajectory=True``, ``(steps + 1, B, 2n)``.
    """
    gamma = resolve_damping(hamiltonian, damping, CONFORMAL_LEAPFROG.name)
    return integrate(CONFORMAL_LEAPFROG, hamiltonian, x0, step_size, steps, trajectory=trajectory, damping=gamma)


def conformal_midpoint(
    hamiltonian: Hamiltonian,
    x0: torch.Tensor,
    step_size: StepSize,
    steps: int,
    *,
    trajectory: bool = False,
    damping: float | torch.Tensor | None = None,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> torch.Tensor:
    """``D_{h/2} ∘ implicit_midpoint_h ∘ D_{h/2}`` for ``ẋ = Ω∇H − γ(0, p)`` with any ``H``.

    ``D_t(q, p) = (q, e^{−γt} p)``; ``γ`` from ``damping`` or ``hamiltonian.damping`` (default ``0``: the implicit
    midpoint rule). Each midpoint step is solved as by ``implicit_midpoint`` (``tol``, ``max_iter``). Conformally
    symplectic (``Φ_h^*ω = e^{−γh}ω``), symmetric, order 2. Returns ``(B, 2n)`` or ``(steps + 1, B, 2n)``.
    """
    who = CONFORMAL_MIDPOINT.name
    gamma = resolve_damping(hamiltonian, damping, who)
    tol = check_positive_float(tol, "tol", who)
    check_positive_int(max_iter, "max_iter", who)
    return integrate(
        CONFORMAL_MIDPOINT,
        hamiltonian,
        x0,
        step_size,
        steps,
        trajectory=trajectory,
        damping=gamma,
        tol=tol,
        max_iter=max_iter,
    )
