"""A canonical flow with a learnable Gaussian base, as a model of the joint density ``e^{−U(q) − |p|²/2}``.

Configuration-space targets ``π(q) ∝ e^{−U(q)}`` on ``ℝ^d`` are handled by *augmentation*: canonical flows act
on phase space, so the model lives on ``(q, p) ∈ ℝ^{2d}`` (``n = d``) and targets the joint
``π(q, p) ∝ e^{−U(q) − |p|²/2}``, whose ``q``-marginal is ``π(q)``; samplers return the ``q`` half. A draw is
``x = T⁻¹(z)``, ``z ~ N(μ, diag σ²)`` (``PhaseSpaceGaussian.diagonal``) with ``T`` the flow (``forward`` = data ->
latent). Because ``log|det ∂T/∂x| = 0``, the model density is exactly ``log q(x) = log N(T(x); μ, σ²)``:
no Jacobian is computed, and only the base can carry the target's scale and normalization.

*Learned auxiliary momenta.* A canonical map preserves volume, hence the distribution of density values: if
``x = T⁻¹(z)``, then ``log q(x)`` is distributed as ``log q₀(z)``, whose spread is that of ``−χ²_{2d}/2``. A
target whose log-density spread is much larger cannot be fitted. Neal's funnel is the example: under
``π(q) N(p; 0, I)``, ``−log π`` contains ``(d − 1)v/2`` with ``v ~ N(0, 9)`` (spread ≈ 13.6 nats for
``d = 10``, against ≈ 3.2 for a 20-d Gaussian). The momenta are auxiliary, so any normalized conditional
``r(p | q)`` gives a joint ``π(q) r(p | q)`` with the right ``q``-marginal. With ``momentum="learned"`` it is
``r(p | q) = N(0, diag e^{2s(q)})`` with ``s`` a network (zero-initialized: ``N(0, I)`` at the start), trained
with the flow, a learned position-dependent mass as in Riemannian-manifold HMC. For the funnel,
``s_i = −v/2`` makes each pair ``(x_i, p_i)`` volume-neutral (``−log`` joint ``= v²/18 + Σ(x_i e^{−v/2})²/2 +
Σ(p_i e^{v/2})²/2 + p_v²/2``, the spread of a Gaussian). Samplers use ``FlowSampler.joint_potential``; they stay
exact for ``π(q)`` whatever ``s`` is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from nflows.transforms import MaskedAffineAutoregressiveTransform
from torch import nn

from canonflow.builders import canonical_flow
from canonflow.checkpoint import register_migration, register_model
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.flow import CanonicalFlow
from canonflow.nn import MLP
from canonflow.nn.activations import ACTIVATIONS, make_activation
from canonflow.phase_space import split
from canonflow.sampling.potential import Potential
from canonflow.sampling.precondition import AffinePoint, Preconditioner
from canonflow.transforms import LinearSymplectic, PointTransform, SymplecticComposite
from canonflow.transforms.hamiltonian_flows import LeapfrogFlow
from canonflow.validation import check_choice, check_non_negative_int, check_positive_int

__all__ = ["FlowSampler", "ExpAffineAutoregressive", "joint_potential", "joint_energy", "MOMENTA"]

MOMENTA = ("standard", "learned")


def joint_potential(potential: Potential, x: torch.Tensor) -> torch.Tensor:
    """``U(q) + |p|²/2`` for phase-space points ``x = [q, p]`` of shape ``(B, 2d)``; shape ``(B,)``."""
    q, p = split(x)
    return potential(q) + 0.5 * p.pow(2).sum(-1)


class ExpAffineAutoregressive(MaskedAffineAutoregressiveTransform):
    """``q ↦ y``, ``y_i = e^{a_i(q_{<i})} q_i + b_i(q_{<i})`` (an affine MAF on ``ℝ^d`` in the coordinate order of
    ``q``) with ``a = A tanh(â/A)``, ``A = 8``: exponential scales over ``[e^{−8}, e^{8}]`` (nflows' softplus
    scales need huge raw outputs for large ones). The MADE's last layer starts at zero: the identity map.
    Exactly invertible (``d`` passes of the MADE); used as the configuration map of a ``PointTransform``.
    ``activation``: the MADE's hidden activation (a name of ``canonflow.nn.activations.ACTIVATIONS``); ``"tanh"``
    saturates, so ``a`` is constant far outside the region seen in training, ``"silu"`` extrapolates linearly
    (Neal's funnel needs ``a = −v/2`` out to the rarely visited mouth ``v ≈ 9–12``).

    ``linear_skip = k > 0``: add an exact, unbounded linear path in the first ``k`` coordinates,
    ``a = (M ⊙ W_a) q_{:k} + A tanh(â(q)/A)`` and ``b = (M ⊙ W_b) q_{:k} + b̂(q)``, with ``M`` the first ``k``
    columns of the strictly lower-triangular mask (``a_i``, ``b_i`` see only ``q_{<i}``, the MADE's order, so the
    map stays autoregressive and the ``d``-pass inverse stays exact) and ``W_a``, ``W_b`` (``d × k``)
    zero-initialized (still the identity at the start). The bound applies to the MADE's part only. ``k = 1``
    represents Neal's funnel's ``x_i ↦ x_i e^{−v/2}`` exactly at every ``v``. ``k = d`` (every ``q_{<i}``) is
    numerically unstable there: Adam keeps the weights on ``x_j`` (ideally 0) at ``≈ 0.01`` of noise, and
    ``x_j`` of hundreds in the mouth turn them into log-scales of several units, which cascade along ``i`` into
    overflowing draws (with the funnel's settings, training stopped on a NaN loss after 376 and 606 steps).
    """

    bound = 8.0

    def __init__(self, features: int, hidden: int, activation: str = "tanh", linear_skip: int = 0) -> None:
        act = make_activation(activation, type(self).__name__)
        super().__init__(features, hidden, num_blocks=2, use_residual_blocks=False, activation=act)
        nn.init.zeros_(self.autoregressive_net.final_layer.weight)
        nn.init.zeros_(self.autoregressive_net.final_layer.bias)
        self.linear_skip = _check_linear_skip(linear_skip, features, type(self).__name__)
        if self.linear_skip:
            k = self.linear_skip
            self.linear_log_scale = nn.Parameter(torch.zeros(features, k))
            self.linear_shift = nn.Parameter(torch.zeros(features, k))
            self.register_buffer("linear_mask", torch.ones(features, features).tril(-1)[:, :k], persistent=False)

    def _log_scale_and_shift(self, params: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)`` from the MADE's output ``params`` at ``inputs`` (and the linear path at ``inputs``)."""
        raw, shift = self._unconstrained_scale_and_shift(params)
        log_scale = self.bound * torch.tanh(raw / self.bound)
        if self.linear_skip:
            mask, leading = self.linear_mask.to(inputs.dtype), inputs[:, : self.linear_skip]
            log_scale = log_scale + leading @ (mask * self.linear_log_scale).T
            shift = shift + leading @ (mask * self.linear_shift).T
        return log_scale, shift

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_scale, shift = self._log_scale_and_shift(self.autoregressive_net(inputs, context), inputs)
        return inputs * log_scale.exp() + shift, log_scale.sum(-1)

    def inverse(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``d`` passes of the MADE, as in nflows' ``AutoregressiveTransform.inverse``, except that pass ``k``
        writes only coordinate ``k`` (exact, as ``q_{<k}`` are) and leaves the later ones at 0. nflows rewrites
        all of them every pass: with the unbounded linear path, a not yet exact coordinate can overflow, and the
        masked weights' ``0 · inf`` would then turn the exact ones into NaN. The result is the same."""
        outputs = torch.zeros_like(inputs)
        log_scale = torch.zeros_like(inputs)
        index = torch.arange(self.features, device=inputs.device)
        for k in range(self.features):
            log_scale, shift = self._log_scale_and_shift(self.autoregressive_net(outputs, context), outputs)
            outputs = torch.where(index == k, (inputs - shift) * torch.exp(-log_scale), outputs)
        return outputs, -log_scale.sum(-1)


def _check_linear_skip(value: object, features: int, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= features:
        raise ValueError(f"{who}: expected linear_skip to be an int in [0, {features}], got {value!r}")
    return value


class _LinearSkipMLP(MLP):
    """``s(q) = W q_{:k} + b + MLP(q)`` (``b``: the MLP's output bias), ``W`` (``d × k``) zero-initialized: an exact
    linear path in the first ``k`` coordinates."""

    def __init__(self, features: int, hidden: int, activation: str, k: int) -> None:
        super().__init__(features, features, hidden, 2, activation, squeeze=False, zero_init=True)
        self.k = k
        self.linear = nn.Linear(k, features, bias=False)
        nn.init.zeros_(self.linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.linear(x[:, : self.k])


def _point_layers(flow: dict[str, Any], dim: int, activation: str, linear_skip: int) -> list[PointTransform]:
    return [
        PointTransform(ExpAffineAutoregressive(dim, flow["hidden"], activation, linear_skip), dim)
        for _ in range(flow.get("point", 0))
    ]


def _build(flow: dict[str, Any], dim: int, activation: str, linear_skip: int) -> SymplecticComposite:
    kind = flow.get("kind")
    if kind == "canonical":
        options = {"blocks": flow["blocks"], "hidden": flow["hidden"], "householder": flow.get("householder")}
        stack = canonical_flow(dim, zero_center=False, **options)
        return SymplecticComposite(_point_layers(flow, dim, activation, linear_skip) + list(stack.layers))
    if kind == "leapfrog":
        layers = _point_layers(flow, dim, activation, linear_skip)
        if flow.get("linear", False):
            layers.append(LinearSymplectic(dim, householder=flow.get("householder")))
        options = {key: flow[key] for key in ("steps", "step_size", "hidden", "depth")}
        layers.append(LeapfrogFlow(dim, **options))
        return SymplecticComposite(layers)
    raise ValueError(f"FlowSampler: unknown flow kind {kind!r}; expected 'canonical' or 'leapfrog'")


@register_model
class FlowSampler(CanonicalFlow):
    """``x = T⁻¹(z)``, ``z ~ N(μ, diag σ²)`` on ``ℝ^{2d}``: a :class:`~canonflow.CanonicalFlow` with a learnable
    diagonal Gaussian base (``PhaseSpaceGaussian.diagonal``) and optional learned auxiliary momenta.

    Build with ``FlowSampler.canonical(dim, blocks, hidden)`` (``canonflow.canonical_flow`` stack, without
    ``ZeroCenter``, whose data-dependent centring does not suit reverse-KL training) or
    ``FlowSampler.leapfrog(dim, steps, step_size, hidden, depth, linear, householder)`` (a ``LeapfrogFlow``: ``steps``
    leapfrog steps of a learned separable Hamiltonian, optionally after a ``LinearSymplectic``). Options of both:
    ``householder`` (reflections per linear layer), ``point`` (data-side point layers, ``ExpAffineAutoregressive``
    lifted to phase space), ``momentum="learned"`` (auxiliary momenta ``p | q ~ N(0, diag e^{2s(q)})``, see the
    module docstring) and ``activation`` (of the point layers' and learned momenta's networks, not of the flow's own
    layers: ``"tanh"``, or ``"silu"`` to extrapolate linearly into rarely sampled tails), ``linear_skip`` (an exact,
    zero-initialized linear path in those networks, in the first ``linear_skip`` coordinates of ``q``, see
    ``canonical``). ``n`` is the dimension ``d`` of ``q``. Saved with :meth:`save`, loaded with ``canonflow.load``.
    """

    def __init__(
        self,
        dim: int,
        flow: dict[str, Any],
        momentum: str = "standard",
        momentum_hidden: int = 64,
        activation: str = "tanh",
        linear_skip: int = 0,
    ) -> None:
        who = "FlowSampler"
        check_positive_int(dim, "dim", who)
        check_choice(momentum, MOMENTA, "momentum", who)
        check_choice(activation, tuple(ACTIVATIONS), "activation", who)
        check_positive_int(momentum_hidden, "momentum_hidden", who)
        linear_skip = _check_linear_skip(linear_skip, dim, who)
        super().__init__(_build(dict(flow), dim, activation, linear_skip), PhaseSpaceGaussian.diagonal(dim))
        self.flow_config = dict(flow)
        self.momentum = momentum
        self.momentum_hidden = momentum_hidden
        self.activation = activation
        self.linear_skip = linear_skip
        self.momentum_log_scale: MLP | None = None
        if momentum == "learned" and linear_skip:
            self.momentum_log_scale = _LinearSkipMLP(dim, momentum_hidden, activation, linear_skip)
        elif momentum == "learned":
            self.momentum_log_scale = MLP(dim, dim, momentum_hidden, 2, activation, squeeze=False, zero_init=True)
        self._config = {
            "dim": dim,
            "flow": dict(flow),
            "momentum": momentum,
            "momentum_hidden": momentum_hidden,
            "activation": activation,
            "linear_skip": linear_skip,
        }

    @property
    def preconditioner(self) -> AffinePoint | None:
        """The exact affine first stage set by :meth:`precondition`, or ``None``."""
        first = self._transform.layers[0]
        return first if isinstance(first, AffinePoint) else None

    def precondition(self, fit: Preconditioner) -> None:
        """Compose the affine map of a Gaussian fit ``N(m, Σ)`` of ``π(q)`` into the flow as its first (data-side)
        layer, :class:`~canonflow.sampling.precondition.AffinePoint` ``(q, p) -> (A⁻¹(q − m), Aᵀp)`` with
        ``Σ = UΛUᵀ``, ``A = UΛ^{1/2}``; the auxiliary momenta become ``N(0, Σ⁻¹)`` (:meth:`joint_potential`) and
        the base is reset to ``N(0, I)`` (see ``canonflow.sampling.precondition``). An untrained flow (identity and
        unitary layers) is then exactly the Gaussian fit times ``N(0, Σ⁻¹)`` momenta. Replaces an earlier
        preconditioner; the model is saved and reloaded with it."""
        if fit.mean.shape != (self.n,) or fit.covariance.shape != (self.n, self.n):
            raise ValueError(f"FlowSampler.precondition: expected a fit of dimension {self.n}")
        reference = self.base.loc
        matrix, _ = fit.factor()
        layer = self.preconditioner
        if layer is None:
            layer = AffinePoint(self.n).to(reference)
            self._transform = SymplecticComposite([layer, *self._transform.layers])
        layer.set(fit.mean.to(reference), matrix.to(reference))
        with torch.no_grad():
            self.base.loc.zero_()
            self.base.log_scale.zero_()
        self._config["precondition"] = True

    @classmethod
    def canonical(
        cls,
        dim: int,
        blocks: int = 4,
        hidden: int = 64,
        householder: int | None = None,
        momentum: str = "standard",
        point: int = 0,
        activation: str = "tanh",
        linear_skip: int = 0,
    ) -> FlowSampler:
        """A ``canonical_flow(dim, blocks, hidden, householder)`` stack with a learnable Gaussian base.

        ``householder``: complex Householder reflections per ``LinearSymplectic`` (default ``min(dim − 1, 4)``);
        ``dim − 1`` lets every linear layer reach any unitary ``X + iY``, in particular any rotation ``R`` acting
        as ``(q, p) -> (Rq, Rp)``, which a Gaussian target with a non-diagonal covariance ``RΛRᵀ`` needs.
        ``momentum``: ``"standard"`` (``p ~ N(0, I)``) or ``"learned"`` (``p | q ~ N(0, diag e^{2s(q)})``, see
        the module docstring). ``point``: number of ``PointTransform(ExpAffineAutoregressive)`` layers on the
        data side, cotangent lifts ``(q, p) -> (f(q), (∂f/∂q)⁻ᵀp)`` of an affine autoregressive map ``f`` (in the
        coordinate order of ``q``): a scale of ``q_i`` that depends on ``q_{<i}``, which shears cannot build
        cheaply (Neal's funnel: ``x_i e^{−v/2}``). ``activation``: of the point layers' and learned momenta's
        networks (``"tanh"``; ``"silu"`` extrapolates linearly). ``linear_skip = k``: add a zero-initialized exact
        linear path in the first ``k`` coordinates of ``q`` to those networks (``ExpAffineAutoregressive(...,
        linear_skip=k)``; ``s(q) = W q_{:k} + b + MLP(q)``); 0: none. Neal's funnel (``q = (v, x)``) uses 1.
        """
        check_non_negative_int(point, "point", "FlowSampler")
        flow = {"kind": "canonical", "blocks": blocks, "hidden": hidden, "householder": householder, "point": point}
        return cls(dim, flow, momentum, activation=activation, linear_skip=linear_skip)

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
        momentum: str = "standard",
        point: int = 0,
        activation: str = "tanh",
        linear_skip: int = 0,
    ) -> FlowSampler:
        """A ``LeapfrogFlow`` (after ``point`` point layers and, when ``linear``, a ``LinearSymplectic(dim,
        householder)``; see ``canonical``) with a learnable base."""
        check_non_negative_int(point, "point", "FlowSampler")
        flow = {"kind": "leapfrog", "steps": steps, "step_size": step_size, "hidden": hidden, "depth": depth}
        flow |= {"linear": linear, "householder": householder, "point": point}
        return cls(dim, flow, momentum, activation=activation, linear_skip=linear_skip)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FlowSampler:
        """Rebuild an untrained sampler from :meth:`config` (with an identity preconditioner if it had one, whose
        buffers the saved state fills)."""
        model = cls(
            config["dim"],
            config["flow"],
            config.get("momentum", "standard"),
            config.get("momentum_hidden", 64),
            config.get("activation", "tanh"),
            config.get("linear_skip", 0),  # checkpoints from before the option: no linear path
        )
        if config.get("precondition", False):
            eye = torch.eye(model.n, dtype=torch.float64)
            model.precondition(Preconditioner(torch.zeros(model.n, dtype=torch.float64), eye, "identity"))
        return model

    def joint_potential(self, potential: Potential, x: torch.Tensor) -> torch.Tensor:
        """``−log`` of the joint target ``π(q) r(p | q)`` up to a constant, shape ``(B,)`` for ``x`` ``(B, 2d)``.

        ``"standard"`` momenta: ``U(q) + |p|²/2``. ``"learned"``: ``U(q) + Σ_i [p_i² e^{−2s_i(q)}/2 + s_i(q)]``,
        ``−log N(p; 0, diag e^{2s(q)})`` up to the same constant ``d log 2π / 2``, so normalizers agree. With a
        preconditioner (:meth:`precondition`, ``Σ = AAᵀ``) ``p`` is replaced by ``P = Aᵀp`` and ``−log|det A|``
        added: momenta ``N(0, Σ⁻¹)`` (times the learned scales), the same normalizer.
        """
        layer = self.preconditioner
        if self.momentum_log_scale is None and layer is None:
            return joint_potential(potential, x)
        q, p = split(x)
        shift = 0.0
        if layer is not None:
            p, shift = p @ layer.matrix, -layer.log_abs_det
        if self.momentum_log_scale is None:
            return potential(q) + 0.5 * p.pow(2).sum(-1) + shift
        log_scale = self.momentum_log_scale(q)
        return potential(q) + (0.5 * p.pow(2) * torch.exp(-2 * log_scale) + log_scale).sum(-1) + shift


register_migration("FlowSampler", "FlowSampler", {"transform.": "_transform.", "base.": "_distribution."})


def joint_energy(flow: CanonicalFlow, potential: Potential) -> Callable[[torch.Tensor], torch.Tensor]:
    """The energy ``x -> −log π(x)`` (up to a constant) of the joint target a flow on ``(q, p)`` samples:
    ``FlowSampler.joint_potential`` (which knows learned momenta) or ``U(q) + |p|²/2`` for any other
    :class:`~canonflow.CanonicalFlow` (e.g. one fitted by ``canonflow.density.fit_variational``)."""
    if isinstance(flow, FlowSampler):
        return lambda x: flow.joint_potential(potential, x)
    return lambda x: joint_potential(potential, x)
