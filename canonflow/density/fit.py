"""Fitting a canonical flow: maximum likelihood on samples, reverse KL to a Boltzmann distribution.

Both are short adapters over :func:`canonflow.training.train` (Adam, schedule, best weights, time limit, resume,
processes): :class:`~canonflow.batches.Batches` draws the data, :mod:`canonflow.estimators` gives the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from canonflow.batches import Batches, split
from canonflow.density.likelihood import augment_momenta, gaussian_nll, nll
from canonflow.distributed import DistributedContext, check_global_batch, shard
from canonflow.estimators import GRADIENTS, forward_kl, reverse_kl
from canonflow.flow import CanonicalFlow, check_flow
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.validation import as_samples, check_choice, check_energy, check_positive_float, check_positive_int

__all__ = ["DEFAULT_GRAD_CLIP", "OBJECTIVES", "fit_density", "fit_variational"]

Energy = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_GRAD_CLIP = 10.0
"""The gradient-norm bound of ``fit_variational`` when it builds the ``TrainConfig`` itself."""

OBJECTIVES = ("reverse", "forward", "both")
"""The objectives of ``fit_variational``: reverse KL, forward KL or their sum."""


def fit_density(
    flow: CanonicalFlow,
    data: torch.Tensor,
    *,
    validation_data: torch.Tensor | None = None,
    validation_fraction: float = 0.1,
    batch_size: int = 256,
    config: TrainConfig | None = None,
    distributed: DistributedContext | None = None,
) -> TrainResult:
    """Fit ``flow`` to ``data`` by maximum likelihood.

    ``data``: phase-space points ``(B, 2n)`` or configurations ``(B, n)`` (augmented with fresh momenta
    ``p ~ N(0, I)`` per minibatch; the loss is then ``NLL(q, p) − NLL_gauss(p)``, see
    :mod:`canonflow.density.likelihood`). Validation uses ``validation_data`` or else a random
    ``validation_fraction`` of ``data`` (``0``: none); its mean NLL in nats per sample (of ``q`` alone for
    configurations, momenta from a fixed seed so that validations compare) selects the best weights and is the
    result's ``best_validation`` (``inf`` without validation). ``config`` defaults to ``TrainConfig()``. Data is
    converted to the flow's dtype. With a ``distributed`` context every rank draws the same global minibatch and
    keeps its shard (:class:`~canonflow.batches.Batches`); the global batch must be divisible by the number of ranks.
    """
    who = "fit_density"
    n = check_flow(flow, who).n
    config = TrainConfig(description=who) if config is None else config
    check_positive_int(batch_size, "batch_size", who)
    data = as_samples(data, n, who, flow.base.loc)
    if validation_data is not None:
        validation_data = as_samples(validation_data, n, who, flow.base.loc, "validation_data")
        if validation_data.shape[1] != data.shape[1]:
            raise ValueError(f"{who}: validation_data has width {validation_data.shape[1]}, data {data.shape[1]}")
    elif validation_fraction:
        data, validation_data = split(data, validation_fraction, config.seed + 1, who)
    augmented = data.shape[1] == n
    batches = Batches(
        data, batch_size, augment=augment_momenta if augmented else None, distributed=distributed, who=who
    )

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        x = batches.draw(generator)
        if not augmented:
            return -flow.log_prob(x).mean()
        return (-flow.log_prob(x) - gaussian_nll(x[:, n:])).mean()

    def validate() -> float:
        generator = torch.Generator().manual_seed(config.seed + 2)
        return float(nll(flow, validation_data, generator=generator).mean())

    return train(
        flow, loss_fn, config, validate=validate if validation_data is not None else None, distributed=distributed
    )


def fit_variational(
    flow: CanonicalFlow,
    energy: Energy,
    beta: float = 1.0,
    *,
    batch_size: int = 256,
    config: TrainConfig | None = None,
    gradient: str = "path",
    objective: str = "reverse",
    anneal: float = 0.0,
    beta_start: float = 0.1,
    distributed: DistributedContext | None = None,
    **train_options: Any,
) -> TrainResult:
    """Fit ``flow`` to ``e^{−βH}/Z`` by minimizing the reverse KL; the losses are free energies in nats.

    The loss is ``F_var = mean(log q_θ(x) + βH(x))/β`` (:func:`canonflow.estimators.reverse_kl` ``/ β``) over
    ``batch_size`` reparametrized draws per step; ``F_var − F = KL(q_θ ‖ e^{−βH}/Z)/β``. ``energy`` maps
    ``(B, 2n) -> (B,)`` (e.g. a :class:`~canonflow.systems.HamiltonianSystem`, or any differentiable callable). A
    mixture base is drawn by strata (``batch_size ≥`` its components) and weighted, an unbiased estimate
    differentiable in its weights. ``gradient``: ``"path"`` (default; zero variance at the optimum, one more
    forward pass: 1.2–1.6× the step time in the free-energy benchmarks) or ``"total"``. With a ``distributed``
    context ``batch_size`` is the global batch: every rank draws the same latent batch and pushes only its shard
    through the flow.

    Training settings come from ``config`` (used exactly as given) or from keyword arguments of
    :class:`~canonflow.training.TrainConfig` (``steps``, ``lr``, ``grad_clip``, ``checkpoint``, ...), whose
    defaults here clip the gradient norm at :data:`DEFAULT_GRAD_CLIP` (``grad_clip=None``: no clipping): on a
    potential with deep, narrow wells the first draws land on steep walls and unclipped steps throw the flow
    far off (docs/own-system.md, "When training stalls").

    Options for potentials the flow does not cover at first:

    - ``objective``: ``"reverse"`` (default, mode-seeking), ``"forward"``
      (:func:`canonflow.estimators.forward_kl`, ``KL(π‖q)`` by self-normalized importance sampling:
      mass-covering) or ``"both"`` (their sum; its fixed point is still ``q = π``); every term is divided by
      ``β``. The forward term draws ``batch_size`` i.i.d. samples on every rank (it is not sharded).
    - ``anneal``: over the first ``anneal · steps`` steps the inverse temperature rises geometrically,
      ``β_k = β · beta_start^{1 − k/K}``, ``K = ⌊anneal · steps⌋``, from ``beta_start · β`` to ``β`` (``0``: no
      annealing), so the flow spreads over every well while the target is still flat. The loss at step ``k`` is
      the minibatch ``KL(q‖π_{β_k})/β`` up to a constant (a free energy only once ``β_k = β``). A resumed run
      continues the schedule from the checkpoint's step.

    There is no validation: the final weights are kept.
    """
    who = "fit_variational"
    base = check_flow(flow, who).base
    beta = check_positive_float(beta, "beta", who)
    check_positive_int(batch_size, "batch_size", who)
    check_global_batch(batch_size, distributed, who)
    check_choice(gradient, GRADIENTS, "gradient", who)
    check_choice(objective, OBJECTIVES, "objective", who)
    if isinstance(anneal, bool) or not isinstance(anneal, (int, float)) or not 0 <= anneal <= 1:
        raise ValueError(f"{who}: expected 0 <= anneal <= 1, got {anneal!r}")
    if isinstance(beta_start, bool) or not isinstance(beta_start, (int, float)) or not 0 < beta_start <= 1:
        raise ValueError(f"{who}: expected 0 < beta_start <= 1, got {beta_start!r}")
    if not callable(energy):
        raise TypeError(f"{who}: energy must be callable (B, 2n) -> (B,), got {type(energy).__name__}")
    if config is not None and train_options:
        raise ValueError(f"{who}: pass either config or TrainConfig keyword arguments, not both")
    if config is None:
        config = TrainConfig(**{"description": who, "grad_clip": DEFAULT_GRAD_CLIP, **train_options})
    base.strata(batch_size)  # the global batch must hold every component: fail before training
    anneal_steps = int(anneal * config.steps)
    step = [0]

    def checked_energy(x: torch.Tensor) -> torch.Tensor:
        return check_energy(energy(x), len(x), who)

    def current_beta() -> float:
        if step[0] >= anneal_steps:
            return beta
        return beta * beta_start ** (1.0 - step[0] / anneal_steps)

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        b = current_beta()
        step[0] += 1
        terms = []
        if objective != "forward":
            z = base.rsample(batch_size, generator, stratified=True)
            weights = base.strata_weights(batch_size) if base.components > 1 else None
            if distributed is not None:
                z = shard(z)
                weights = None if weights is None else shard(weights)
            terms.append(reverse_kl(flow, checked_energy, z, b, weights=weights, gradient=gradient))
        if objective != "reverse":
            terms.append(forward_kl(flow, checked_energy, batch_size, b, generator))
        return sum(terms) / beta

    def start(first: int) -> None:
        step[0] = first

    return train(flow, loss_fn, config, distributed=distributed, on_start=start)
