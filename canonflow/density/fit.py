"""Fitting a canonical flow: maximum likelihood on samples, reverse KL to a Boltzmann distribution.

Both are short adapters over :func:`canonflow.training.train` (Adam, schedule, best weights, time limit, resume,
processes): :class:`~canonflow.batches.Batches` draws the data, :mod:`canonflow.estimators` gives the loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from canonflow.batches import Batches, split
from canonflow.density.likelihood import augment_momenta, gaussian_nll, nll
from canonflow.distributed import DistributedContext, check_global_batch, shard
from canonflow.estimators import GRADIENTS, reverse_kl
from canonflow.flow import CanonicalFlow, check_flow
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.validation import as_samples, check_choice, check_energy, check_positive_float, check_positive_int

__all__ = ["fit_density", "fit_variational"]

Energy = Callable[[torch.Tensor], torch.Tensor]


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
    distributed: DistributedContext | None = None,
) -> TrainResult:
    """Fit ``flow`` to ``e^{−βH}/Z`` by minimizing the reverse KL; the losses are free energies in nats.

    The loss is ``F_var = mean(log q_θ(x) + βH(x))/β`` (:func:`canonflow.estimators.reverse_kl` ``/ β``) over
    ``batch_size`` reparametrized draws per step; ``F_var − F = KL(q_θ ‖ e^{−βH}/Z)/β``. ``energy`` maps
    ``(B, 2n) -> (B,)`` (e.g. a :class:`~canonflow.systems.HamiltonianSystem`). A mixture base is drawn by strata
    (``batch_size ≥`` its components) and weighted, an unbiased estimate differentiable in its weights.
    ``gradient``: ``"path"`` (default; zero variance at the optimum, one more forward pass: 1.2–1.6× the step
    time in the free-energy benchmarks) or ``"total"``. With a ``distributed`` context ``batch_size`` is the
    global batch: every rank draws the same latent batch and pushes only its shard through the flow.
    """
    who = "fit_variational"
    base = check_flow(flow, who).base
    beta = check_positive_float(beta, "beta", who)
    check_positive_int(batch_size, "batch_size", who)
    check_global_batch(batch_size, distributed, who)
    check_choice(gradient, GRADIENTS, "gradient", who)
    if not callable(energy):
        raise TypeError(f"{who}: energy must be callable (B, 2n) -> (B,), got {type(energy).__name__}")
    config = TrainConfig(description=who) if config is None else config
    base.strata(batch_size)  # the global batch must hold every component: fail before training

    def checked_energy(x: torch.Tensor) -> torch.Tensor:
        return check_energy(energy(x), len(x), who)

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        z = base.rsample(batch_size, generator, stratified=True)
        weights = base.strata_weights(batch_size) if base.components > 1 else None
        if distributed is not None:
            z = shard(z)
            weights = None if weights is None else shard(weights)
        return reverse_kl(flow, checked_energy, z, beta, weights=weights, gradient=gradient) / beta

    return train(flow, loss_fn, config, distributed=distributed)
