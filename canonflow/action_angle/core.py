"""Action-angle coordinates learned as a canonical flow.

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

Four losses (all invariant under a rescaling of phase space, so shrinking the latent cannot lower them):

* :func:`trajectory_loss` (needs sampled trajectories, not ``H``): the variance of each ``r_k`` along each
  trajectory divided by the squared spread of the latent curve (``"spread"``, default), by the squared mean
  of ``r_k`` on that trajectory (``"mean"``) or by the spread of the per-trajectory means across the batch
  (``"across"``).  Use it when trajectories are available (from
  observations or an integrator); it is what the reference runs use.
* :func:`hamiltonian_loss` (needs ``H``, no trajectories): at fixed actions ``I`` sample angles
  ``φ ~ U[0, 2π)ⁿ``, map back with ``T`` and penalize the variance of ``K = H ∘ T`` over ``φ``.  Use it when
  ``H`` is known in closed form and integrating is expensive or trajectories would not cover each torus;
  it needs ``H`` to be finite wherever ``T`` sends the sampled tori (a singular ``H``, e.g. Kepler's at
  ``q = 0``, makes it fragile early in training).
* :func:`normal_form_loss` (needs ``H`` and the action Hamiltonian ``K(I)``, no trajectories, no inverse): the
  squared misfit of ``H(x) = K(I(x))`` at phase-space points. Use it when ``K`` is known in closed form
  (oscillators; isochronous systems such as Calogero–Moser in a trap, ``K = E₀ + ω Σ_k k I_k``; Kepler): since
  the map is canonical, ``H ∘ T = K(I)`` makes every ``I_k`` exactly conserved and every angle turn at
  ``−∂K/∂I_k``, and unlike the other losses it has no static-angle minima.
* :func:`action_loss` (needs the exact actions ``A(x)`` in closed form, e.g. from a Lax spectrum): the squared
  relative misfit of the learned actions. It fixes which action-angle chart is learned, which matters for
  resonant systems, where many charts conserve every action (any canonical map commuting with the flow of
  ``H`` turns one into another); for :class:`~canonflow.systems.CalogeroMoser` the exact chart is known
  outright (:class:`~canonflow.action_angle.charts.CalogeroMoserChart`).

Some systems need more than a flow that starts at the identity: if the identity's latent curves wind around
the origins of their planes differently from any action-angle chart (the planar Kepler family, see
:mod:`canonflow.action_angle.charts`), training would have to drag curves across an origin and settles on
static angles instead. ``ActionAngleFlow(chart=..., symmetry_planes=...)`` or ``(chart=..., winding=True)`` then
starts from a fixed canonical chart in the right winding class and learns with layers that keep it.
:meth:`ActionAngleFlow.fit` can finish Adam with a full-batch L-BFGS polish (``polish_steps``).

Metrics (:func:`evaluate`) on held-out trajectories: action conservation, angle linearity, frequency error and
angle independence.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from nflows.transforms import CompositeTransform, Transform
from torch import nn

from canonflow.action_angle.charts import action_shear_flow, make_chart, winding_flow
from canonflow.builders import canonical_flow
from canonflow.checkpoint import CheckpointError, load, register_model, save_model
from canonflow.distributed import DistributedContext, check_global_batch, shard
from canonflow.phase_space import join, split
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.transforms import LinearSymplectic
from canonflow.validation import check_positive_int, validation

__all__ = [
    "ActionAngleFlow",
    "trajectory_loss",
    "hamiltonian_loss",
    "combined_loss",
    "normal_form_loss",
    "action_loss",
    "angle_loss",
    "unwrap",
    "linear_fit",
    "action_conservation",
    "action_error",
    "frequency_error",
    "angle_independence",
    "evaluate",
    "parameter_count",
]

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_NORMALIZATIONS = ("spread", "mean", "across")


# ---------------------------------------------------------------------------------------------- input checks
def _check_trajectories(x: object, n: int, who: str, min_times: int = 2) -> torch.Tensor:
    """Check a floating, finite ``(num_traj, T, 2n)`` tensor with ``T >= min_times``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected trajectories as a torch.Tensor of shape (num_traj, T, {2 * n})")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected floating-point trajectories, got dtype {x.dtype}")
    if x.dim() != 3:
        raise ValueError(
            f"{who}: expected trajectories of rank 3, shape (num_traj, T, 2n) = (num_traj, T, {2 * n}), "
            f"got rank {x.dim()} with shape {tuple(x.shape)}"
        )
    if x.shape[-1] % 2 != 0:
        raise ValueError(f"{who}: expected an even last dimension 2n ([q, p] layout), got odd {x.shape[-1]}")
    if x.shape[-1] != 2 * n:
        raise ValueError(f"{who}: expected last dimension 2n = {2 * n} (n={n}), got {x.shape[-1]}")
    if x.shape[1] < min_times:
        raise ValueError(f"{who}: expected at least {min_times} time points per trajectory, got T={x.shape[1]}")
    if x.shape[0] < 1:
        raise ValueError(f"{who}: expected at least one trajectory, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{who}: trajectories contain NaN or Inf")
    return x


def _check_points(x: object, n: int, who: str) -> torch.Tensor:
    """Check a floating, finite ``(B, 2n)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor of shape (B, {2 * n})")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[-1] != 2 * n:
        raise ValueError(f"{who}: expected shape (B, 2n) = (B, {2 * n}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{who}: input contains NaN or Inf")
    return x


def _check_times(times: object, length: int, who: str, dtype: torch.dtype) -> torch.Tensor:
    """Check strictly increasing, finite times of shape ``(T,)``; return them in ``dtype``."""
    if not isinstance(times, torch.Tensor):
        raise TypeError(f"{who}: expected times as a torch.Tensor of shape ({length},)")
    if times.dim() != 1 or times.shape[0] != length:
        raise ValueError(f"{who}: expected times of shape (T,) = ({length},), got {tuple(times.shape)}")
    if not torch.isfinite(times).all():
        raise ValueError(f"{who}: times contain NaN or Inf")
    if not bool((times[1:] > times[:-1]).all()):
        raise ValueError(f"{who}: times must be strictly increasing")
    return times.to(dtype)


# ---------------------------------------------------------------------------------------------- the model
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
        if dtype not in _DTYPES:
            raise ValueError(f"{who}: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
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
        self.flow: Transform = flow.to(_DTYPES[dtype])

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters and of every output."""
        return _DTYPES[self.dtype_name]

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
            _check_trajectories(x, self.n, who, min_times=1)
        else:
            _check_points(x, self.n, who)
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
        _check_trajectories(trajectories, self.n, who)
        times = _check_times(times, trajectories.shape[1], who, self.dtype)
        with torch.no_grad():
            _, angles = self.to_action_angle(trajectories)
            slope, _, _ = linear_fit(times, unwrap(angles, dim=1))
        return slope

    # ------------------------------------------------------------------ training
    def fit(
        self,
        trajectories: torch.Tensor,
        times: torch.Tensor | None = None,
        *,
        batch_size: int = 64,
        times_per_batch: int | None = None,
        validation_fraction: float = 0.1,
        normalization: str = "spread",
        angle_weight: float = 0.0,
        hamiltonian: Callable[[torch.Tensor], torch.Tensor] | None = None,
        hamiltonian_weight: float = 0.0,
        num_angles: int = 32,
        action_hamiltonian: Callable[[torch.Tensor], torch.Tensor] | None = None,
        normal_form_weight: float = 0.0,
        actions: Callable[[torch.Tensor], torch.Tensor] | None = None,
        action_weight: float = 0.0,
        polish_steps: int = 0,
        polish_batch: int = 128,
        config: TrainConfig | None = None,
        distributed: DistributedContext | None = None,
        **train_options: Any,
    ) -> TrainResult:
        """Learn the map from trajectories ``(num_traj, T, 2n)`` with :func:`trajectory_loss` ``+ angle_weight ·``
        :func:`angle_loss` ``+ hamiltonian_weight ·`` :func:`hamiltonian_loss` ``+ normal_form_weight ·``
        :func:`normal_form_loss` ``+ action_weight ·`` :func:`action_loss`: Adam on minibatches, then optionally
        ``polish_steps`` L-BFGS steps.

        With ``hamiltonian_weight > 0`` (needs ``hamiltonian``, a callable ``H: (B, 2n) -> (B,)``) every
        trajectory of the batch also contributes its torus: its mean latent actions over the time window
        (detached), on which ``num_angles`` uniform angle vectors are drawn and :func:`hamiltonian_loss`
        penalizes the angle dependence of ``K = H ∘ T``. The circle loss alone is also minimized by maps that
        squeeze each orbit onto an arc of a centred circle traversed back and forth (static angles); ``K`` is
        constant on such an arc but not on the rest of its circle, so the Hamiltonian term rules those out,
        while an exact action-angle map zeroes both terms. Validation and the polish use fixed angle draws, so
        they see the same total loss as Adam (deterministic, as L-BFGS needs). Any strictly monotone function
        of ``H`` serves as well (``K`` is angle-independent exactly when ``f(K)`` is); for an ``H > 0`` that is
        singular somewhere (Calogero–Moser at collisions) ``log H`` keeps sampled torus points near the
        singularity from dominating the term (see ``experiments/results/ACTION_ANGLE.md``).

        With ``normal_form_weight > 0`` (needs ``hamiltonian`` and ``action_hamiltonian``, a callable
        ``K: (B, n) -> (B,)`` of the actions, known in closed form) every sampled point of the batch's
        trajectories also contributes the misfit of ``H(x) = K(I(x))`` (:func:`normal_form_loss`). It pins the
        frequencies to ``−∂K/∂I``, so, like the Hamiltonian term, it rules out static angles.

        With ``action_weight > 0`` (needs ``actions``, a callable ``(B, 2n) -> (B, n)`` giving the exact actions
        in the latent planes' order, e.g. :meth:`~canonflow.systems.CalogeroMoser.actions`) every sampled point
        also contributes :func:`action_loss`, which fits the learned actions to the exact ones.

        Each step draws ``batch_size`` trajectories (shuffled, from the generator of
        :func:`canonflow.training.train`, so runs are resumable) and, with ``times_per_batch``, a window of that
        many consecutive time samples at a random start. A ``validation_fraction`` of the trajectories (at
        least 2) is held out; its full-length loss drives early stopping and the choice of the best weights.
        ``times (T,)`` give the angular velocities of :func:`angle_loss` (uniform sampling is assumed without
        them; its normalization makes the spacing irrelevant then). Training settings come from ``config`` or
        from keyword arguments of :class:`canonflow.training.TrainConfig` (``steps``, ``lr``, ``patience``,
        ``checkpoint``, ``resume``, ``time_limit``, ...). Trajectories are cast to the model's dtype.

        With ``polish_steps > 0``, Adam is followed by full-batch L-BFGS (strong-Wolfe line search, up to 20
        evaluations per step) on the whole-length trajectories of ``polish_batch`` training trajectories (drawn
        with ``seed``): the loss is smooth and the data exact, and quasi-Newton steps reduce it much faster than
        Adam's noisy ones once Adam has found the basin. Each step is followed by a validation; the best weights
        are kept, and the polish stops early when the whole training passes ``time_limit``. Returns the
        ``TrainResult`` (``seconds`` include the polish, ``losses`` end with one value per L-BFGS step,
        ``steps`` counts Adam steps only).

        With a ``distributed`` context (``canonflow.distributed``) every rank draws the same global batch of
        ``min(batch_size, #training trajectories)`` trajectories and time window and keeps its contiguous shard
        of trajectories (the global batch must be divisible by the world size); the ``"spread"`` and ``"mean"``
        losses and :func:`angle_loss` are means over trajectories, so DDP's averaged gradients equal one
        process's. ``"across"``, the Hamiltonian, normal-form and action terms compare trajectories across the
        batch, so with any of them each rank evaluates the whole global batch (same result, no speed-up).
        Validation is identical on all ranks. The L-BFGS polish runs the same full-batch computation on every
        rank, so the ranks stay identical without communication.
        """
        who = "ActionAngleFlow.fit"
        _check_trajectories(trajectories, self.n, who)
        if times is not None:
            _check_times(times, trajectories.shape[1], who, self.dtype)
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"{who}: normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
        check_positive_int(batch_size, "batch_size", who)
        if times_per_batch is not None:
            check_positive_int(times_per_batch, "times_per_batch", who)
            if times_per_batch < 2:
                raise ValueError(f"{who}: times_per_batch must be at least 2, got {times_per_batch}")
        _check_weight(angle_weight, "angle_weight", who)
        _check_weight(hamiltonian_weight, "hamiltonian_weight", who)
        if hamiltonian_weight > 0 and not callable(hamiltonian):
            raise TypeError(f"{who}: hamiltonian_weight > 0 needs a callable hamiltonian (B, 2n) -> (B,)")
        _check_weight(normal_form_weight, "normal_form_weight", who)
        if normal_form_weight > 0 and not (callable(hamiltonian) and callable(action_hamiltonian)):
            raise TypeError(
                f"{who}: normal_form_weight > 0 needs callables hamiltonian (B, 2n) -> (B,) and "
                "action_hamiltonian (B, n) -> (B,)"
            )
        if hamiltonian is not None and hamiltonian_weight == 0 and normal_form_weight == 0:
            raise ValueError(f"{who}: a hamiltonian is used only with hamiltonian_weight > 0 or normal_form_weight > 0")
        if action_hamiltonian is not None and normal_form_weight == 0:
            raise ValueError(f"{who}: an action_hamiltonian is used only with normal_form_weight > 0")
        _check_weight(action_weight, "action_weight", who)
        if action_weight > 0 and not callable(actions):
            raise TypeError(f"{who}: action_weight > 0 needs a callable actions (B, 2n) -> (B, n)")
        if actions is not None and action_weight == 0:
            raise ValueError(f"{who}: actions are used only with action_weight > 0")
        check_positive_int(num_angles, "num_angles", who)
        if num_angles < 2:
            raise ValueError(f"{who}: num_angles must be at least 2, got {num_angles}")
        if polish_steps:
            check_positive_int(polish_steps, "polish_steps", who)
        check_positive_int(polish_batch, "polish_batch", who)
        data = trajectories.detach().to(self.dtype)
        steps = None if times is None else torch.diff(times.to(self.dtype))
        train_set, valid_set = _split(data, validation_fraction, who)
        batch = min(batch_size, len(train_set))
        if batch < 2:
            raise ValueError(f"{who}: need at least 2 training trajectories per batch, got {len(train_set)}")
        length = data.shape[1]
        window = length if times_per_batch is None else min(times_per_batch, length)
        across_batch = (
            normalization == "across" or hamiltonian_weight > 0 or normal_form_weight > 0 or action_weight > 0
        )
        sharded = distributed is not None and not across_batch
        if sharded:
            check_global_batch(batch, distributed, who)

        def draw_angles(count: int, generator: torch.Generator) -> torch.Tensor:
            return 2 * math.pi * torch.rand(count, num_angles, self.n, generator=generator, dtype=self.dtype)

        def loss(chosen: torch.Tensor, dt: torch.Tensor | None, angles: torch.Tensor) -> torch.Tensor:
            return combined_loss(
                self,
                chosen,
                normalization,
                dt,
                angle_weight,
                hamiltonian,
                hamiltonian_weight,
                angles,
                action_hamiltonian,
                normal_form_weight,
                actions,
                action_weight,
            )

        def loss_fn(generator: torch.Generator) -> torch.Tensor:
            chosen = train_set[torch.randperm(len(train_set), generator=generator)[:batch]]
            start = int(torch.randint(0, length - window + 1, (1,), generator=generator))
            dt = None if steps is None else steps[start : start + window - 1]
            angles = draw_angles(batch, generator) if hamiltonian_weight > 0 else torch.empty(0)
            if sharded:
                chosen = shard(chosen)
            return loss(chosen[:, start : start + window], dt, angles)

        valid_angles = draw_angles(len(valid_set), torch.Generator().manual_seed(12345))

        def validate() -> float:
            return float(loss(valid_set, steps, valid_angles))

        config = _config(config, train_options, "action-angle (trajectories)")
        result = _train_and_log(self, loss_fn, config, validate, distributed)
        if polish_steps:
            order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed))
            chosen = train_set[order[:polish_batch]]
            angles = draw_angles(len(chosen), torch.Generator().manual_seed(config.seed + 1))
            budget = None if config.time_limit is None else config.time_limit - result.seconds
            _polish(self, lambda: loss(chosen, steps, angles), validate, polish_steps, budget, result)
        return result

    def fit_hamiltonian(
        self,
        hamiltonian: Callable[[torch.Tensor], torch.Tensor],
        states: torch.Tensor,
        *,
        batch_size: int = 64,
        num_angles: int = 32,
        validation_fraction: float = 0.1,
        config: TrainConfig | None = None,
        distributed: DistributedContext | None = None,
        **train_options: Any,
    ) -> TrainResult:
        """Learn the map from ``H`` alone with :func:`hamiltonian_loss` (no trajectories needed).

        ``states (N, 2n)`` are phase-space points of the region of interest; at every step the current model's
        actions of ``batch_size`` of them fix the tori on which ``num_angles`` angle vectors are sampled.
        Other arguments as in :meth:`fit`. With a ``distributed`` context the model is trained under DDP with
        rank-0 outputs, but every rank evaluates the whole global batch: the loss divides by the spread of the
        energies across all tori of the batch, so shards would not add up to it (same result, no speed-up).
        """
        who = "ActionAngleFlow.fit_hamiltonian"
        if not callable(hamiltonian):
            raise TypeError(f"{who}: expected a callable hamiltonian (B, 2n) -> (B,)")
        _check_points(states, self.n, who)
        check_positive_int(batch_size, "batch_size", who)
        check_positive_int(num_angles, "num_angles", who)
        if num_angles < 2:
            raise ValueError(f"{who}: num_angles must be at least 2, got {num_angles}")
        data = states.detach().to(self.dtype)
        train_set, valid_set = _split(data, validation_fraction, who)
        batch = min(batch_size, len(train_set))
        if batch < 2:
            raise ValueError(f"{who}: need at least 2 training states per batch, got {len(train_set)}")
        valid_generator = torch.Generator().manual_seed(12345)
        valid_angles = 2 * math.pi * torch.rand(len(valid_set), num_angles, self.n, generator=valid_generator)

        def actions_of(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return 0.5 * self.radii(x)

        def loss_fn(generator: torch.Generator) -> torch.Tensor:
            chosen = train_set[torch.randperm(len(train_set), generator=generator)[:batch]]
            angles = 2 * math.pi * torch.rand(batch, num_angles, self.n, generator=generator, dtype=self.dtype)
            return hamiltonian_loss(self, hamiltonian, actions_of(chosen), angles)

        def validate() -> float:
            return float(hamiltonian_loss(self, hamiltonian, actions_of(valid_set), valid_angles.to(self.dtype)))

        config = _config(config, train_options, "action-angle (Hamiltonian)")
        return _train_and_log(self, loss_fn, config, validate, distributed)


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


def _check_weight(weight: object, name: str, who: str) -> None:
    """Refuse a loss weight that is not a finite number ``>= 0`` (a bool included)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"{who}: {name} must be a finite number >= 0, got {weight!r}")


def _split(data: torch.Tensor, fraction: float, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic train/validation split of the first axis (at least 2 held out)."""
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"{who}: validation_fraction must be in (0, 1), got {fraction}")
    held = max(2, round(fraction * len(data)))
    if len(data) - held < 2:
        raise ValueError(f"{who}: need at least 4 trajectories (2 to train, 2 to validate), got {len(data)}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    return data[order[held:]], data[order[:held]]


def _config(config: TrainConfig | None, options: dict[str, Any], description: str) -> TrainConfig:
    if config is not None and options:
        raise ValueError("ActionAngleFlow: pass either config or TrainConfig keyword arguments, not both")
    return config if config is not None else TrainConfig(**{"description": description, **options})


def _train_and_log(
    model: ActionAngleFlow,
    loss_fn: Callable[[torch.Generator], torch.Tensor],
    config: TrainConfig,
    validate,
    distributed: DistributedContext | None,
) -> TrainResult:
    began = time.perf_counter()
    result = train(model, loss_fn, config, validate=validate, distributed=distributed)
    log.info(
        "%s: %d steps in %.1f s, best validation loss %.3g at step %d",
        config.description,
        result.steps,
        time.perf_counter() - began,
        result.best_validation,
        result.best_step,
    )
    return result


def _polish(
    model: ActionAngleFlow,
    objective: Callable[[], torch.Tensor],
    validate: Callable[[], float],
    steps: int,
    time_limit: float | None,
    result: TrainResult,
) -> None:
    """Full-batch L-BFGS on ``objective``; keep the weights with the best ``validate()``; update ``result``."""
    began = time.perf_counter()

    def validation_loss() -> float:
        with torch.no_grad():
            return validate()

    best, best_state = validation_loss(), copy.deepcopy(model.state_dict())
    optimizer = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=20, history_size=50, line_search_fn="strong_wolfe"
    )
    # L-BFGS stops a step when the loss changes by less than tolerance_change = 1e-9 or the gradient falls below
    # tolerance_grad = 1e-7, both absolute: at circle losses of 1e-6 that ends every step after one evaluation.
    # Dividing the objective by its starting value makes those tolerances relative.
    with torch.no_grad():
        start = float(objective())
    scale = start if math.isfinite(start) and start > 0 else 1.0

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = objective() / scale
        value.backward()
        return value

    done = 0
    while done < steps and (time_limit is None or time.perf_counter() - began < time_limit):
        value = float(optimizer.step(closure).detach()) * scale
        done += 1
        if not math.isfinite(value):
            break
        result.losses.append(value)
        current = validation_loss()
        if current < best:
            best, best_state = current, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    seconds = time.perf_counter() - began
    result.seconds += seconds
    result.best_validation = min(result.best_validation, best)
    log.info("L-BFGS polish: %d steps in %.1f s, best validation loss %.3g", done, seconds, best)


# ---------------------------------------------------------------------------------------------- losses
def trajectory_loss(model: ActionAngleFlow, trajectories: torch.Tensor, normalization: str = "spread") -> torch.Tensor:
    """The circle loss: how much each latent radius ``r_k = q̂_k² + p̂_k²`` varies along each trajectory.

    For trajectories ``b = 1..B`` of ``T`` samples, ``v_bk = Var_t r_k(b, t)`` and ``m_bk = mean_t r_k(b, t)``:

    * ``"spread"`` (default): ``mean_{b,k} v_bk / s_bk²`` with ``s_bk = Var_t q̂_k + Var_t p̂_k`` the spread of the
      latent curve in plane ``k``. Scale invariant, and it punishes latent curves that sit away from the origin:
      a small blob of size ``δ`` at distance ``c`` costs about ``4c²/δ²``, so the loss cannot be lowered by
      pushing orbits away from the origin or squeezing them into short static arcs (the failure modes of the
      other two normalizations on the Kepler family); a centred circle costs 0.
    * ``"mean"``: ``mean_{b,k} v_bk / m_bk²``, the squared relative fluctuation of each action (the
      square of the action-conservation metric). Scale invariant, but a latent translation lowers it, and on the
      Kepler family training drifts that way: orbits end as small blobs away from the origin, angles static.
    * ``"across"``: ``(1/n) Σ_k mean_b v_bk / Var_b m_bk``, the within-trajectory variance relative to the
      spread of the actions across the batch (needs ``B ≥ 2``; invariant under rescaling and translation).
      On the Kepler family it drifts to maps that squeeze each orbit into a short arc, with static angles.
    """
    q, p = split(model(trajectories))
    radii = q * q + p * p
    within = radii.var(dim=1, unbiased=False)
    mean = radii.mean(dim=1)
    if normalization == "spread":
        spread = q.var(dim=1, unbiased=False) + p.var(dim=1, unbiased=False)
        return (within / (spread * spread).clamp_min(torch.finfo(radii.dtype).tiny)).mean()
    if normalization == "across":
        return (within.mean(0) / mean.var(dim=0, unbiased=False).clamp_min(torch.finfo(radii.dtype).tiny)).mean()
    if normalization == "mean":
        return (within / (mean * mean).clamp_min(torch.finfo(radii.dtype).tiny)).mean()
    raise ValueError(f"trajectory_loss: normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")


def angle_loss(model: ActionAngleFlow, trajectories: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
    """How far the latent angles are from turning uniformly: ``mean_{b,k} Var_t ω_bkt / (mean_t ω_bkt)²``.

    ``ω_bkt = Δφ_bkt/Δt_t`` are the angular velocities between consecutive samples of trajectories
    ``(B, T, 2n)`` (``steps (T − 1,)`` are the ``Δt``; uniform spacing when ``None``), with ``Δφ`` the signed
    angle between consecutive latent points in each plane (``atan2`` of their cross and dot products, so
    samples must be dense enough that ``|Δφ| < π``). On exact action-angle coordinates it vanishes
    (Liouville–Arnold: ``φ̇ = −∂K/∂I`` is constant). It complements :func:`trajectory_loss`, whose minimizers
    can be approached by maps that squeeze each orbit into a short, nearly static arc: such arcs have
    ``mean_t ω → 0`` and a large ``angle_loss``. Not suitable when some true frequency is zero.
    """
    q, p = split(model(trajectories))
    cross = q[:, :-1] * p[:, 1:] - p[:, :-1] * q[:, 1:]
    dot = q[:, :-1] * q[:, 1:] + p[:, :-1] * p[:, 1:]
    velocity = torch.atan2(cross, dot)
    if steps is not None:
        velocity = velocity / steps.reshape(1, -1, 1)
    mean = velocity.mean(dim=1)
    return (velocity.var(dim=1, unbiased=False) / (mean * mean).clamp_min(torch.finfo(mean.dtype).tiny)).mean()


def combined_loss(
    model: ActionAngleFlow,
    trajectories: torch.Tensor,
    normalization: str = "spread",
    steps: torch.Tensor | None = None,
    angle_weight: float = 0.0,
    hamiltonian: Callable[[torch.Tensor], torch.Tensor] | None = None,
    hamiltonian_weight: float = 0.0,
    angles: torch.Tensor | None = None,
    action_hamiltonian: Callable[[torch.Tensor], torch.Tensor] | None = None,
    normal_form_weight: float = 0.0,
    actions: Callable[[torch.Tensor], torch.Tensor] | None = None,
    action_weight: float = 0.0,
) -> torch.Tensor:
    """The loss of :meth:`ActionAngleFlow.fit`: :func:`trajectory_loss` ``+ angle_weight ·`` :func:`angle_loss`
    ``+ hamiltonian_weight ·`` :func:`hamiltonian_loss` ``+ normal_form_weight ·`` :func:`normal_form_loss`
    ``+ action_weight ·`` :func:`action_loss` on trajectories ``(B, T, 2n)`` (the last two terms on all their
    ``B·T`` points).

    The Hamiltonian term (``hamiltonian_weight > 0``; needs ``hamiltonian`` and ``angles (B, M, n)``) uses one
    torus per trajectory, at its mean latent actions over the ``T`` samples, detached (the term then shapes
    the map on each torus, not the choice of tori). Every term vanishes on an exact action-angle map.
    """
    value = trajectory_loss(model, trajectories, normalization)
    if angle_weight > 0:
        value = value + angle_weight * angle_loss(model, trajectories, steps)
    if hamiltonian_weight > 0:
        if hamiltonian is None or angles is None:
            raise ValueError("combined_loss: hamiltonian_weight > 0 needs a hamiltonian and angles (B, M, n)")
        with torch.no_grad():
            tori = 0.5 * model.radii(trajectories).mean(dim=1)
        value = value + hamiltonian_weight * hamiltonian_loss(model, hamiltonian, tori, angles)
    points = trajectories.reshape(-1, trajectories.shape[-1])
    if normal_form_weight > 0:
        if hamiltonian is None or action_hamiltonian is None:
            raise ValueError("combined_loss: normal_form_weight > 0 needs a hamiltonian and an action_hamiltonian")
        value = value + normal_form_weight * normal_form_loss(model, points, hamiltonian, action_hamiltonian)
    if action_weight > 0:
        if actions is None:
            raise ValueError("combined_loss: action_weight > 0 needs actions")
        value = value + action_weight * action_loss(model, points, actions)
    return value


def action_loss(
    model: ActionAngleFlow, states: torch.Tensor, actions: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """How far the learned actions are from known exact actions at ``states (B, 2n)``.

    With ``I(x) = r(x)/2`` the learned and ``A(x)`` the exact actions (``actions: (B, 2n) -> (B, n)``, e.g.
    :meth:`~canonflow.systems.CalogeroMoser.actions` from a Lax spectrum), the loss is
    ``mean_{b,k} (I_k(x_b) − A_k(x_b))² / (A_k(x_b) + ε_k)²`` with ``ε_k = 0.01 · mean_b A_k(x_b)``: the squared
    relative error of each action, as the action-conservation metric weighs it, kept finite at ``A_k → 0``.
    Zero exactly when the chart's actions are the exact ones; a canonical map with exact actions has angles
    conjugate to them, so it is an action-angle chart (the angles are free up to ``φ → φ + ∇S(I)``). Use it
    when the actions are known in closed form and the chart (the angles, and the map back) is wanted.
    """
    with torch.no_grad():
        target = actions(states)
    floor = 0.01 * target.mean(0)
    return (((0.5 * model.radii(states) - target) / (target + floor)) ** 2).mean()


def normal_form_loss(
    model: ActionAngleFlow,
    states: torch.Tensor,
    hamiltonian: Callable[[torch.Tensor], torch.Tensor],
    action_hamiltonian: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """How far ``H`` is from the known action Hamiltonian ``K`` of the learned actions at ``states (B, 2n)``.

    With ``I(x) = r(x)/2`` the learned actions, the loss is ``mean_b (H(x_b) − K(I(x_b)))² / Var_b H(x_b)``:
    invariant under rescaling ``H`` and ``K`` together, and zero exactly when ``H = K ∘ I`` at every point. On a
    region, ``H = K ∘ I`` means ``H ∘ T = K(I)`` with ``T`` canonical, so every ``I_k`` is conserved and every
    angle turns at ``φ̇_k = −∂K/∂I_k``: the map is an action-angle chart with the prescribed frequencies, and no
    static-angle map fits. It needs no trajectories and no inverse, only ``K`` in closed form, e.g.
    ``K(I) = Σ_k ω_k I_k`` (oscillators), ``E₀ + ω Σ_k k I_k`` (:class:`~canonflow.systems.CalogeroMoser`, see
    its ``action_hamiltonian``), ``−k²/(2 (I₁ + I₂)²)`` (planar Kepler in the ``(J_r, G)`` basis).
    """
    energy = hamiltonian(states)
    target = action_hamiltonian(0.5 * model.radii(states))
    spread = energy.var(unbiased=False).clamp_min(torch.finfo(energy.dtype).tiny)
    return ((energy - target) ** 2).mean() / spread


def hamiltonian_loss(
    model: ActionAngleFlow,
    hamiltonian: Callable[[torch.Tensor], torch.Tensor],
    actions: torch.Tensor,
    angles: torch.Tensor,
) -> torch.Tensor:
    """The angle dependence of ``K = H ∘ T`` on the tori ``I = actions``.

    ``actions (B, n)`` are fixed and ``angles (B, M, n)`` sampled on each torus; with ``K_bm = H(T(I_b, φ_bm))``
    the loss is ``mean_b Var_m K_bm / Var_b mean_m K_bm``: zero exactly when ``K`` is independent of ``φ`` on
    every torus, and invariant under rescaling ``H``.
    """
    radius = torch.sqrt(2 * actions).unsqueeze(1).expand_as(angles)
    x = model.inverse(join(radius * torch.cos(angles), radius * torch.sin(angles)))
    with validation(False):
        energy = hamiltonian(x.reshape(-1, x.shape[-1])).reshape(angles.shape[:2])
    spread = energy.mean(1).var(unbiased=False).clamp_min(torch.finfo(energy.dtype).tiny)
    return energy.var(dim=1, unbiased=False).mean() / spread


# ---------------------------------------------------------------------------------------------- metrics
def unwrap(angles: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Remove the ``2π`` jumps of ``angles`` along ``dim`` (as ``numpy.unwrap``)."""
    step = torch.diff(angles, dim=dim)
    step = torch.remainder(step + math.pi, 2 * math.pi) - math.pi
    first = angles.narrow(dim, 0, 1)
    return torch.cat([first, first + torch.cumsum(step, dim=dim)], dim=dim)


def linear_fit(times: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares lines ``values ≈ a + b t`` along axis 1 of ``values (B, T, n)`` at ``times (T,)``.

    Returns ``(slope b, intercept a, R²)``, each ``(B, n)``; ``R² = 1 − SS_res/SS_tot`` (``1`` for a constant).
    """
    t = times.to(values.dtype).reshape(1, -1, 1)
    t_mean, v_mean = t.mean(1, keepdim=True), values.mean(1, keepdim=True)
    dt, dv = t - t_mean, values - v_mean
    slope = (dt * dv).sum(1) / (dt * dt).sum(1)
    intercept = v_mean.squeeze(1) - slope * t_mean.squeeze(1)
    residual = dv - slope.unsqueeze(1) * dt
    total = (dv * dv).sum(1)
    r2 = torch.where(total > 0, 1 - (residual * residual).sum(1) / total.clamp_min(torch.finfo(values.dtype).tiny), 1.0)
    return slope, intercept, r2


def action_conservation(actions: torch.Tensor) -> torch.Tensor:
    """Median over trajectories of ``std_t(I_k)/mean_t(I_k)`` for actions ``(B, T, n)``, shape ``(n,)``."""
    return (actions.std(dim=1, unbiased=False) / actions.mean(dim=1)).median(dim=0).values


def action_error(learned: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Median over all samples of ``|I_k − A_k| / A_k`` for learned and exact actions ``(..., n)``, shape ``(n,)``."""
    return ((learned - exact).abs() / exact).reshape(-1, exact.shape[-1]).median(dim=0).values


def frequency_error(learned: torch.Tensor, exact: torch.Tensor) -> dict[str, Any]:
    """Compare learned angular velocities ``(B, n)`` with exact frequencies; signs are ignored.

    * ``exact (B, n)``: one frequency per dof; the latent dofs are matched to the exact ones by the
      permutation with the smallest median error.
    * ``exact (B,)``: one fundamental frequency ``ω`` (degenerate systems such as Kepler or Calogero–Moser):
      latent dof ``k`` must turn at an integer multiple ``m_k ω`` (its winding number, the rounded median of
      ``|learned_k|/ω``).

    Returns ``{"relative_error": [median over trajectories of |(|learned_k|) − exact_k| / exact_k per latent
    dof], "matched": [exact dof or winding number per latent dof]}``.
    """
    speed = learned.abs()
    if exact.dim() == 1:
        ratio = speed / exact.unsqueeze(-1)
        winding = ratio.median(dim=0).values.round()
        error = (ratio - winding).abs().median(dim=0).values / winding.clamp_min(1.0)
        return {"relative_error": error.tolist(), "matched": [int(w) for w in winding.tolist()]}
    best: tuple[float, torch.Tensor, tuple[int, ...]] | None = None
    for permutation in itertools.permutations(range(exact.shape[-1])):
        target = exact[:, list(permutation)]
        error = ((speed - target).abs() / target).median(dim=0).values
        if best is None or float(error.max()) < best[0]:
            best = (float(error.max()), error, permutation)
    assert best is not None
    return {"relative_error": best[1].tolist(), "matched": list(best[2])}


def angle_independence(
    model: ActionAngleFlow,
    hamiltonian: Callable[[torch.Tensor], torch.Tensor],
    actions: torch.Tensor,
    num_angles: int = 64,
    generator: torch.Generator | None = None,
) -> float:
    """Median over tori ``I = actions (B, n)`` of ``std_φ H(T(I, φ)) / |mean_φ H(T(I, φ))|``, ``φ ~ U[0, 2π)ⁿ``.

    Tori where ``H`` is not finite count as infinitely bad (e.g. a Kepler torus sent through ``q = 0``).
    """
    angles = 2 * math.pi * torch.rand(len(actions), num_angles, model.n, generator=generator, dtype=actions.dtype)
    radius = torch.sqrt(2 * actions).unsqueeze(1).expand_as(angles)
    with torch.no_grad():
        x = model.inverse(join(radius * torch.cos(angles), radius * torch.sin(angles)))
        with validation(False):
            energy = hamiltonian(x.reshape(-1, 2 * model.n)).reshape(angles.shape[:2])
    relative = energy.std(dim=1, unbiased=False) / energy.mean(dim=1).abs()
    relative = torch.where(torch.isfinite(relative), relative, torch.inf)
    return float(relative.median())


def evaluate(
    model: ActionAngleFlow,
    trajectories: torch.Tensor,
    times: torch.Tensor,
    hamiltonian: Callable[[torch.Tensor], torch.Tensor] | None = None,
    exact_frequencies: torch.Tensor | None = None,
    num_angles: int = 64,
    seed: int = 0,
    exact_actions: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Held-out metrics of a learned action-angle map on trajectories ``(B, T, 2n)`` sampled at ``times (T,)``.

    * ``action_conservation``: per dof, median over trajectories of ``std_t(I_k)/mean_t(I_k)``;
    * ``angle_r2`` / ``angle_r2_min``: per dof, median / minimum over trajectories of the ``R²`` of a line
      through the unwrapped ``φ_k(t)``;
    * ``frequencies``: per dof, the median learned ``dφ_k/dt``;
    * with ``exact_frequencies`` (``(B, n)`` or ``(B,)``, see :func:`frequency_error`):
      ``frequency_error`` and ``frequency_matched``;
    * with ``hamiltonian``: ``angle_independence`` (:func:`angle_independence` at each trajectory's mean
      actions);
    * with ``exact_actions`` (``(B, 2n) -> (B, n)``, in the latent planes' order): ``action_error``, per dof the
      median over all samples of ``|I_k − A_k|/A_k`` (:func:`action_error`).
    """
    who = "evaluate"
    _check_trajectories(trajectories, model.n, who)
    trajectories = trajectories.to(model.dtype)
    times = _check_times(times, trajectories.shape[1], who, model.dtype)
    with torch.no_grad():
        actions, angles = model.to_action_angle(trajectories)
        slope, _, r2 = linear_fit(times, unwrap(angles, dim=1))
    metrics: dict[str, Any] = {
        "action_conservation": action_conservation(actions).tolist(),
        "angle_r2": r2.median(dim=0).values.tolist(),
        "angle_r2_min": r2.min(dim=0).values.tolist(),
        "frequencies": slope.median(dim=0).values.tolist(),
    }
    if exact_frequencies is not None:
        matched = frequency_error(slope, exact_frequencies.to(model.dtype))
        metrics["frequency_error"] = matched["relative_error"]
        metrics["frequency_matched"] = matched["matched"]
    if hamiltonian is not None:
        generator = torch.Generator().manual_seed(seed)
        metrics["angle_independence"] = angle_independence(
            model, hamiltonian, actions.mean(dim=1), num_angles, generator
        )
    if exact_actions is not None:
        with torch.no_grad():
            exact = exact_actions(trajectories.reshape(-1, trajectories.shape[-1])).reshape(actions.shape)
        metrics["action_error"] = action_error(actions, exact).tolist()
    return metrics


def parameter_count(model: nn.Module) -> int:
    """The number of trainable scalars of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
