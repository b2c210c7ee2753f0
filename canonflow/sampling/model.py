"""A canonical flow with a learnable Gaussian base, as a model of the joint density ``e^{−U(q) − |p|²/2}``.

Configuration-space targets ``π(q) ∝ e^{−U(q)}`` on ``ℝ^d`` are handled by *augmentation*: canonical flows act
on phase space, so the model lives on ``(q, p) ∈ ℝ^{2d}`` (``n = d``) and targets the joint
``π(q, p) ∝ e^{−U(q) − |p|²/2}``, whose ``q``-marginal is ``π(q)``; samplers return the ``q`` half. A draw is
``x = T⁻¹(z)``, ``z ~ N(μ, diag σ²)`` (``DiagonalPhaseSpaceNormal``) with ``T`` the flow (``forward`` = data ->
latent). Because ``log|det ∂T/∂x| = 0``, the model density is exactly ``log q(x) = log N(T(x); μ, σ²)``:
no Jacobian is computed, and only the base can carry the target's scale and normalization.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from canonflow.builders import canonical_flow
from canonflow.checkpoint import register_model
from canonflow.distributions import DiagonalPhaseSpaceNormal
from canonflow.phase_space import split
from canonflow.sampling.potential import Potential
from canonflow.transforms import LinearSymplectic, SymplecticComposite
from canonflow.transforms.hamiltonian_flows import LeapfrogFlow
from canonflow.validation import check_positive_int

__all__ = ["FlowSampler", "joint_potential"]


def joint_potential(potential: Potential, x: torch.Tensor) -> torch.Tensor:
    """``U(q) + |p|²/2`` for phase-space points ``x = [q, p]`` of shape ``(B, 2d)``; shape ``(B,)``."""
    q, p = split(x)
    return potential(q) + 0.5 * p.pow(2).sum(-1)


def _build(flow: dict[str, Any], dim: int) -> SymplecticComposite:
    kind = flow.get("kind")
    if kind == "canonical":
        householder = flow.get("householder")
        return canonical_flow(
            dim, blocks=flow["blocks"], hidden=flow["hidden"], householder=householder, zero_center=False
        )
    if kind == "leapfrog":
        layers = [LinearSymplectic(dim, householder=flow.get("householder"))] if flow.get("linear", False) else []
        options = {key: flow[key] for key in ("steps", "step_size", "hidden", "depth")}
        layers.append(LeapfrogFlow(dim, **options))
        return SymplecticComposite(layers)
    raise ValueError(f"FlowSampler: unknown flow kind {kind!r}; expected 'canonical' or 'leapfrog'")


@register_model
class FlowSampler(nn.Module):
    """``x = T⁻¹(z)``, ``z ~ N(μ, diag σ²)`` on ``ℝ^{2d}``: a canonical flow ``T`` and a learnable Gaussian base.

    Build with ``FlowSampler.canonical(dim, blocks, hidden)`` (``canonflow.canonical_flow`` stack, without
    ``ZeroCenter``, whose data-dependent centring does not suit reverse-KL training) or
    ``FlowSampler.leapfrog(dim, steps, step_size, hidden, depth, linear, householder)`` (a ``LeapfrogFlow``: ``steps``
    leapfrog steps of a learned separable Hamiltonian, optionally after a ``LinearSymplectic``). Saved and
    loaded with ``canonflow.checkpoint.save_model`` / ``canonflow.load``.
    """

    def __init__(self, dim: int, flow: dict[str, Any]) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim", "FlowSampler")
        self.flow_config = dict(flow)
        self.transform = _build(self.flow_config, self.dim)
        self.base = DiagonalPhaseSpaceNormal(self.dim)

    @classmethod
    def canonical(cls, dim: int, blocks: int = 4, hidden: int = 64, householder: int | None = None) -> FlowSampler:
        """A ``canonical_flow(dim, blocks, hidden, householder)`` stack with a learnable Gaussian base.

        ``householder``: complex Householder reflections per ``LinearSymplectic`` (default ``min(dim − 1, 4)``);
        ``dim − 1`` lets every linear layer reach any unitary ``X + iY``, in particular any rotation ``R`` acting
        as ``(q, p) -> (Rq, Rp)``, which a Gaussian target with a non-diagonal covariance ``RΛRᵀ`` needs.
        """
        return cls(dim, {"kind": "canonical", "blocks": blocks, "hidden": hidden, "householder": householder})

    @classmethod
    def leapfrog(
        cls,
        dim: int,
        steps: int = 8,
        step_size: float = 0.2,
        hidden: int = 64,
        depth: int = 2,
        linear: bool = False,
        householder: int | None = None,
    ) -> FlowSampler:
        """A ``LeapfrogFlow`` (optionally after a ``LinearSymplectic(dim, householder)`` when ``linear``) with a
        learnable base."""
        flow = {"kind": "leapfrog", "steps": steps, "step_size": step_size, "hidden": hidden, "depth": depth}
        return cls(dim, {**flow, "linear": linear, "householder": householder})

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "flow": self.flow_config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FlowSampler:
        return cls(config["dim"], config["flow"])

    def to_data(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``z`` -> phase-space point ``x = T⁻¹(z)``, ``(B, 2d) -> (B, 2d)``."""
        return self.transform.inverse(z)[0]

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Phase-space point ``x`` -> latent ``z = T(x)``, ``(B, 2d) -> (B, 2d)``."""
        return self.transform(x)[0]

    def sample_with_log_prob(
        self, num: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` draws ``x`` ``(num, 2d)`` and their exact model log-density ``log q(x)`` ``(num,)``
        (reparameterized: differentiable in the parameters when grad mode is on)."""
        z = self.base.rsample(num, generator)
        return self.to_data(z), self.base.log_prob(z)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log q(x) = log N(T(x); μ, σ²)``, shape ``(B,)``."""
        return self.base.log_prob(self.to_latent(x))
