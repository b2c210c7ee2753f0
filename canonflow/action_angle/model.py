"""Action-angle coordinates learned as a canonical flow: the model :class:`ActionAngleFlow` and its builder.

For an integrable system with ``n`` degrees of freedom the Liouville–Arnold theorem gives a canonical map
``T`` from action-angle coordinates ``(I, φ)`` to phase space ``(q, p)`` under which the transformed Hamiltonian
``K = H ∘ T`` depends on the actions only, so ``İ = −∂K/∂φ = 0`` and the angles advance linearly in time.
``ActionAngleFlow`` learns ``T⁻¹`` as a canonical flow (``forward``: physical ``x = (q, p)`` → latent
``z = (q̂, p̂)``) and reads the latent in Cartesian form

    q̂_k = √(2 I_k) cos φ_k,    p̂_k = √(2 I_k) sin φ_k,    I_k = r_k / 2,    r_k = q̂_k² + p̂_k².

Since ``dq̂_k ∧ dp̂_k = dI_k ∧ dφ_k``, Hamilton's equations in these variables read ``İ_k = 0`` and
``φ̇_k = −∂K/∂I_k``: every latent point turns clockwise on a circle of radius ``√(2 I_k)`` (as the phase point
of an oscillator does in its ``(q, p)`` plane), and :meth:`ActionAngleFlow.frequencies` reports the measured
``dφ_k/dt``, i.e. ``−∂K/∂I_k``.

:meth:`ActionAngleFlow.fit` minimizes a loss of :mod:`canonflow.action_angle.losses` (by default the circle
loss :class:`~canonflow.action_angle.TrajectoryLoss`), Adam on minibatches and optionally an L-BFGS polish.

Some systems need more than a flow that starts at the identity: if the identity's latent curves wind around
the origins of their planes differently from any action-angle chart (the planar Kepler family, see
:mod:`canonflow.action_angle.charts`), training would have to drag curves across an origin and settles on
static angles instead. ``ActionAngleFlow(chart=..., symmetry_planes=...)`` or ``(chart=..., winding=True)`` then
starts from a fixed canonical chart in the right winding class and learns with layers that keep it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch
from nflows.transforms import CompositeTransform, Transform
from torch import nn

from canonflow.action_angle.batches import TrajectoryBatches
from canonflow.action_angle.charts import action_shear_flow, make_chart, winding_flow
from canonflow.action_angle.losses import TrajectoryLoss
from canonflow.action_angle.metrics import linear_fit, unwrap
from canonflow.builders import canonical_flow
from canonflow.checkpoint import CheckpointError, load, register_model, save_model
from canonflow.distributed import DistributedContext
from canonflow.losses import Loss
from canonflow.phase_space import join, split
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.transforms import LinearSymplectic
from canonflow.validation import (
    as_dtype,
    check_points,
    check_positive_int,
    check_times,
    check_trajectories,
    validation,
)

__all__ = ["ActionAngleFlow"]


@register_model
class ActionAngleFlow(nn.Module):
    """A canonical flow ``x = (q, p) ↦ z = (q̂, p̂)`` read as action-angle coordinates ``(I, φ)``.

    Args:
        n: degrees of freedom; phase-space points have shape ``(B, 2n)``.
        flow: a canonical nflows transform on ``(B, 2n)`` (``forward``: physical → latent). By default
            ``canonflow.canonical_flow(n, **canonical_flow_kwargs)`` without ``ZeroCenter`` (whose batch
            statistics would make the map depend on the minibatch), followed by a ``LinearSymplectic``
            read-out that turns and scales the latent planes; ``blocks=0`` leaves the read-out alone (exact for
            harmonic oscillators). A model with a custom ``flow`` works but cannot be saved by config.
        dtype: ``"float64"`` (default; action conservation to 1e-3 and beyond needs it) or ``"float32"``.
        chart: an optional fixed, physics-informed canonical first layer, ``{"name": ..., **options}`` (see
            :mod:`canonflow.action_angle.charts`; e.g. ``{"name": "kepler", "k": 1.0}``), applied before the
            learned layers. It puts the map in the right topological class where the identity is not.
        **canonical_flow_kwargs: ``symmetry_planes`` (``s > 0``: the learned layers are
            :func:`~canonflow.action_angle.charts.action_shear_flow` blocks that conserve the actions of the last
            ``s`` planes exactly, for charts that turn a symmetry into rotations of those planes; with it,
            ``scaled`` and ``twist`` are passed to ``action_shear_flow``), ``winding``
            (``True``: :func:`~canonflow.action_angle.charts.winding_flow` blocks that keep the winding number of
            every latent curve around the origin of every plane, after a chart in the right class),
            ``blocks``, ``hidden``, ``householder``, ``full_linear``, ``zero_center``,
            ``activation`` of :func:`canonflow.canonical_flow`.

    ``I_k = (q̂_k² + p̂_k²)/2`` and ``φ_k = atan2(p̂_k, q̂_k) ∈ [0, 2π)``; see the module docstring for the sign
    of the angular velocity.
    """

    def __init__(
        self,
        n: int,
        flow: Transform | None = None,
        dtype: str = "float64",
        chart: dict[str, Any] | None = None,
        **canonical_flow_kwargs: Any,
    ) -> None:
        super().__init__()
        who = "ActionAngleFlow"
        self.n = check_positive_int(n, "n", who)
        floating = as_dtype(dtype, who)
        self.dtype_name = dtype
        if flow is not None and (canonical_flow_kwargs or chart is not None):
            raise ValueError(f"{who}: pass either a flow or canonical_flow keyword arguments and a chart, not both")
        self.custom_flow = flow is not None
        self.chart = None if chart is None else dict(chart)
        self.flow_kwargs = {"zero_center": False, **canonical_flow_kwargs}
        if flow is None:
            flow = _default_flow(n, chart=self.chart, **self.flow_kwargs)
        elif not isinstance(flow, Transform):
            raise TypeError(f"{who}: expected flow to be an nflows Transform, got {type(flow).__name__}")
        self.flow: Transform = flow.to(floating)

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters and of every output."""
        return as_dtype(self.dtype_name, "ActionAngleFlow")

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this model (not available with a custom ``flow``)."""
        if self.custom_flow:
            raise CheckpointError("ActionAngleFlow: a model built around a custom flow cannot be saved by config")
        chart = {} if self.chart is None else {"chart": dict(self.chart)}
        return {"n": self.n, "dtype": self.dtype_name, **chart, **self.flow_kwargs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ActionAngleFlow:
        """Build an untrained model from :meth:`config`'s output."""
        return cls(**config)

    def save(self, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
        """Write config and weights atomically to ``path`` (readable by ``canonflow.load``)."""
        save_model(path, self, extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ActionAngleFlow:
        """Rebuild a model written by :meth:`save`."""
        model = load(path)
        if not isinstance(model, cls):
            raise CheckpointError(f"{path} holds a {type(model).__name__}, not an ActionAngleFlow")
        return model

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``, reading weights saved when ``LinearSymplectic`` defaulted to ``min(n, 4)``
        Householder reflections (before ``min(n − 1, 4)``; e.g. ``experiments/results/oscillator``): when the
        config leaves ``householder`` to the default and every stored layer has ``k`` reflections where this
        model has another number, the flow is rebuilt with ``householder=k`` (recorded in :meth:`config`)."""
        stored, own = (
            {key: value.shape[0] for key, value in weights.items() if key.endswith("reflector_real")}
            for weights in (state_dict, self.state_dict())
        )
        counts = set(stored.values())
        old_default = stored.keys() == own.keys() and stored != own and len(counts) == 1
        if old_default and not self.custom_flow and "householder" not in self.flow_kwargs:
            self.flow_kwargs["householder"] = counts.pop()
            device = next(iter(self.state_dict().values())).device
            self.flow = _default_flow(self.n, chart=self.chart, **self.flow_kwargs).to(device, self.dtype)
        return super().load_state_dict(state_dict, strict, assign)

    # ------------------------------------------------------------------ maps
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical ``x = (q, p)`` of shape ``(..., 2n)`` → latent ``z = (q̂, p̂)`` of the same shape."""
        shape = x.shape
        with validation(False):
            z, _ = self.flow(x.reshape(-1, 2 * self.n))
        return z.reshape(shape)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``z = (q̂, p̂)`` of shape ``(..., 2n)`` → physical ``x = (q, p)`` of the same shape."""
        shape = z.shape
        with validation(False):
            x, _ = self.flow.inverse(z.reshape(-1, 2 * self.n))
        return x.reshape(shape)

    def _as_input(self, x: torch.Tensor, who: str) -> torch.Tensor:
        if x.dtype != self.dtype:
            raise TypeError(f"{who}: input dtype {x.dtype} differs from the model's {self.dtype}; cast it")
        return x

    def radii(self, x: torch.Tensor) -> torch.Tensor:
        """``r_k = q̂_k² + p̂_k² = 2 I_k`` of points ``x`` of shape ``(..., 2n)``, shape ``(..., n)``."""
        q, p = split(self(x))
        return q * q + p * p

    def to_action_angle(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, 2n)`` (or ``(num, T, 2n)``) → ``(I, φ)``, each ``(..., n)``; ``φ ∈ [0, 2π)``."""
        who = "ActionAngleFlow.to_action_angle"
        if isinstance(x, torch.Tensor) and x.dim() == 3:
            check_trajectories(x, self.n, who, min_times=1)
        else:
            check_points(x, self.n, who)
        q, p = split(self(self._as_input(x, who)))
        return 0.5 * (q * q + p * p), torch.remainder(torch.atan2(p, q), 2 * math.pi)

    def from_action_angle(self, actions: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """``(I, φ)``, each of shape ``(..., n)`` with ``I ≥ 0`` → physical ``x`` of shape ``(..., 2n)``."""
        who = "ActionAngleFlow.from_action_angle"
        for name, t in (("actions", actions), ("angles", angles)):
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise TypeError(f"{who}: expected {name} as a floating torch.Tensor of shape (..., {self.n})")
            if t.dim() == 0 or t.shape[-1] != self.n:
                raise ValueError(f"{who}: expected {name} of shape (..., n) = (..., {self.n}), got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{who}: {name} contain NaN or Inf")
        if actions.shape != angles.shape:
            raise ValueError(f"{who}: actions and angles must share a shape, got {actions.shape} and {angles.shape}")
        if bool((actions < 0).any()):
            raise ValueError(f"{who}: actions must be non-negative")
        radius = torch.sqrt(2 * self._as_input(actions, who))
        return self.inverse(join(radius * torch.cos(angles), radius * torch.sin(angles)))

    def frequencies(self, trajectories: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Mean angular velocities ``dφ_k/dt`` per trajectory and dof, shape ``(num_traj, n)``.

        The slope of a least-squares line through the unwrapped angles ``φ_k(t)`` of each trajectory
        ``(num_traj, T, 2n)`` sampled at ``times (T,)``. With the Cartesian convention of this module the slope
        is ``−∂K/∂I_k`` (clockwise motion in each latent plane).
        """
        who = "ActionAngleFlow.frequencies"
        check_trajectories(trajectories, self.n, who)
        times = check_times(times, trajectories.shape[1], who, self.dtype)
        with torch.no_grad():
            _, angles = self.to_action_angle(trajectories)
            slope, _, _ = linear_fit(times, unwrap(angles, dim=1))
        return slope

    # ------------------------------------------------------------------ training

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: torch.Tensor,
        times: torch.Tensor | None = None,
        *,
        loss: Loss | None = None,
        batch_size: int = 64,
        times_per_batch: int | None = None,
        validation_fraction: float = 0.1,
        config: TrainConfig | None = None,
        distributed: DistributedContext | None = None,
        **train_options: Any,
    ) -> TrainResult:
        """Learn the map by minimizing ``loss(model, batch)`` (default :class:`TrajectoryLoss` ``()``, the circle
        loss) on ``data``: trajectories ``(num_traj, T, 2n)`` sampled at ``times (T,)``, or points ``(N, 2n)`` for
        losses that do not read the time axis (e.g. ``fit(states, loss=HamiltonianLoss(H))``, which learns from
        ``H`` alone). Returns the :class:`~canonflow.training.TrainResult`.

        Minibatches, the held-out ``validation_fraction`` (whose full-length loss drives early stopping and the
        choice of the best weights) and sharding over a ``distributed`` job are those of
        :class:`~canonflow.action_angle.batches.TrajectoryBatches` (``batch_size`` trajectories, windows of
        ``times_per_batch`` samples). ``times`` give the angular velocities of :class:`AngleLoss` (uniform
        sampling is assumed without them). Training settings come from ``config`` or from keyword arguments of
        :class:`~canonflow.training.TrainConfig` (``steps``, ``lr``, ``patience``, ``checkpoint``, ``resume``,
        ``time_limit``, ``polish_steps``, ...). With ``polish_steps > 0``, Adam is followed by full-batch L-BFGS
        on the whole-length trajectories of ``POLISH_BATCH`` (128) training trajectories (drawn with ``seed``;
        sampling losses draw from ``seed + 1``), each step validated, the best weights kept, within ``time_limit``.
        Validation and the polish use fixed draws, so they see the same loss as Adam. Data are cast to the
        model's dtype.
        """
        who = "ActionAngleFlow.fit"
        loss = TrajectoryLoss() if loss is None else loss
        if not isinstance(loss, Loss):
            raise TypeError(f"{who}: expected loss to be a canonflow.losses.Loss, got {type(loss).__name__}")
        if config is not None and train_options:
            raise ValueError(f"{who}: pass either config or TrainConfig keyword arguments, not both")
        if config is None:
            config = TrainConfig(**{"description": "action-angle", **train_options})
        batches = TrajectoryBatches(
            data,
            times,
            loss,
            n=self.n,
            dtype=self.dtype,
            batch_size=batch_size,
            times_per_batch=times_per_batch,
            validation_fraction=validation_fraction,
            distributed=distributed,
            who=who,
        )
        polish = batches.polish(config.seed) if config.polish_steps else None
        return train(
            self,
            lambda generator: loss(self, batches.draw(generator)),
            config,
            validate=lambda: float(loss(self, batches.validation)),
            distributed=distributed,
            objective=None if polish is None else lambda: loss(self, polish),
        )


def _default_flow(
    n: int,
    chart: dict[str, Any] | None = None,
    symmetry_planes: int = 0,
    winding: bool = False,
    blocks: int = 4,
    householder: int | None = None,
    full_linear: bool = False,
    scaled: bool = False,
    twist: int = 0,
    **kwargs: Any,
) -> Transform:
    """``chart`` (if any), the learned body (if ``blocks > 0``), a ``LinearSymplectic`` read-out.

    The body is ``canonical_flow(n, blocks, ...)``; with ``winding=True`` it is ``winding_flow(n, blocks,
    hidden)`` and a read-out without Householder reflections (each plane scaled and sheared on its own), so
    every layer keeps the winding numbers of the chart; or with ``symmetry_planes = s > 0``
    ``action_shear_flow(n, n − s, blocks, hidden, scaled=scaled, twist=twist)`` (tanh) and no read-out: then
    every layer conserves the actions of the last ``s`` planes exactly (a read-out could squeeze their circles
    into ellipses; the shears can represent the linear maps of the first planes that fix their origin).
    ``householder`` must be 0 or ``None`` and ``full_linear`` false then.
    """
    who = "ActionAngleFlow"
    layers: list[Transform] = []
    if chart is not None:
        layer = make_chart(chart)
        if layer.n != n:
            raise ValueError(f"{who}: chart {chart['name']!r} has n = {layer.n}, the model n = {n}")
        layers.append(layer)
    if winding:
        mixed = symmetry_planes or scaled or twist or full_linear or kwargs.get("zero_center")
        if mixed or householder not in (0, None):
            raise ValueError(
                f"{who}: winding=True needs symmetry_planes=0, householder=0, full_linear=False, zero_center=False "
                "(and no scaled or twist)"
            )
        if kwargs.get("activation", "tanh") != "tanh":
            raise ValueError(f"{who}: winding=True supports activation='tanh' only")
        if blocks > 0:
            layers.append(winding_flow(n, blocks, kwargs.get("hidden", 64)))
        layers.append(LinearSymplectic(n, householder=0))
        return CompositeTransform(layers)
    if symmetry_planes:
        if not 0 < check_positive_int(symmetry_planes, "symmetry_planes", who) < n:
            raise ValueError(f"{who}: expected 0 < symmetry_planes < n = {n}, got {symmetry_planes}")
        householder = 0 if householder is None else householder
        if householder != 0 or full_linear or kwargs.get("zero_center"):
            raise ValueError(f"{who}: symmetry_planes needs householder=0, full_linear=False and zero_center=False")
        if blocks > 0:
            if kwargs.get("activation", "tanh") != "tanh":
                raise ValueError(f"{who}: symmetry_planes supports activation='tanh' only")
            layers.append(
                action_shear_flow(n, n - symmetry_planes, blocks, kwargs.get("hidden", 64), scaled=scaled, twist=twist)
            )
        return CompositeTransform(layers)
    if scaled or twist:
        raise ValueError(f"{who}: scaled and twist apply to symmetry_planes > 0 only")
    if blocks > 0:
        layers.append(canonical_flow(n, blocks=blocks, householder=householder, full_linear=full_linear, **kwargs))
    layers.append(LinearSymplectic(n, householder=householder, full=full_linear))
    return CompositeTransform(layers)
