"""Training a ``FlowSampler`` by reverse KL divergence to the joint density ``e^{−U(q) − |p|²/2}``.

With ``x = T⁻¹(z)``, ``z ~ q₀ = N(μ, σ²)`` and ``log|det J| = 0``, the model density is ``q(x) = q₀(T(x))``, and

    ``KL(q ‖ π) = E_{z~q₀}[ log q₀(z) + U(q(z)) + |p(z)|²/2 ] + log Z``,

with ``Z = ∫ e^{−U(q) − |p|²/2} dq dp``. The loss is the bracket averaged over a reparameterized batch: its
minimum ``−log Z`` is reached exactly when ``q = π``, and every value is an upper bound on ``−log Z``
(the free energy). Reverse KL needs no samples of ``π``, only ``U`` and ``∇U``; it is mode-seeking, so
``train_sampler`` can anneal the inverse temperature ``β`` of ``π_β ∝ e^{−β(U + |p|²/2)}`` from
``beta_start`` to 1 over the first ``anneal`` fraction of the steps, which lets the flow spread over all
modes while the target is still flat.
"""

from __future__ import annotations

from pathlib import Path

import torch

from canonflow.checkpoint import read_checkpoint
from canonflow.sampling.model import FlowSampler, joint_potential
from canonflow.sampling.potential import Potential
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.validation import check_positive_int, validation

__all__ = ["reverse_kl_loss", "train_sampler"]


def reverse_kl_loss(
    model: FlowSampler,
    potential: Potential,
    batch_size: int,
    generator: torch.Generator | None = None,
    beta: float = 1.0,
) -> torch.Tensor:
    """``mean[log q₀(z) + β(U(q) + |p|²/2)]`` over ``batch_size`` reparameterized draws (a 0-dim tensor).

    At ``β = 1`` it equals ``KL(q ‖ π) − log Z ≥ −log Z``.
    """
    with validation(False):
        x, log_q = model.sample_with_log_prob(batch_size, generator)
    return (log_q + beta * joint_potential(potential, x)).mean()


def train_sampler(
    model: FlowSampler,
    potential: Potential,
    config: TrainConfig,
    batch_size: int = 256,
    anneal: float = 0.0,
    beta_start: float = 0.1,
    validation_size: int = 2048,
) -> TrainResult:
    """Minimize ``reverse_kl_loss`` with ``canonflow.training.train`` (Adam, cosine schedule, tqdm progress,
    resumable checkpoints per ``config``); returns its ``TrainResult``.

    ``β`` rises geometrically from ``beta_start`` to 1 over the first ``anneal · config.steps`` steps (``anneal
    = 0``: no annealing). Validation (every ``config.eval_every`` steps) is the ``β = 1`` loss on a fixed batch
    of ``validation_size`` draws, an upper bound on ``−log Z``; the best weights seen at ``β = 1`` are kept.
    A resumed run continues the annealing schedule from the checkpoint's step.
    """
    who = "train_sampler"
    check_positive_int(batch_size, "batch_size", who)
    if not 0 <= anneal <= 1:
        raise ValueError(f"{who}: expected 0 <= anneal <= 1, got {anneal}")
    if not 0 < beta_start <= 1:
        raise ValueError(f"{who}: expected 0 < beta_start <= 1, got {beta_start}")
    step = [0]
    if config.resume and config.checkpoint and Path(config.checkpoint).is_file():
        step[0] = int(read_checkpoint(config.checkpoint)["step"])
    anneal_steps = int(anneal * config.steps)

    def beta() -> float:
        if step[0] >= anneal_steps:
            return 1.0
        return beta_start ** (1.0 - step[0] / anneal_steps)

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        value = reverse_kl_loss(model, potential, batch_size, generator, beta())
        step[0] += 1
        return value

    def validate() -> float:
        if step[0] < anneal_steps:
            return float("inf")
        generator = torch.Generator().manual_seed(config.seed + 1)
        return float(reverse_kl_loss(model, potential, validation_size, generator))

    return train(model, loss_fn, config, validate=validate)
