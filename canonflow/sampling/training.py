"""Training a ``FlowSampler`` by reverse KL divergence to the joint density ``e^{−U(q) − |p|²/2}``.

With ``x = T⁻¹(z)``, ``z ~ q₀ = N(μ, σ²)`` and ``log|det J| = 0``, the model density is ``q(x) = q₀(T(x))``, and

    ``KL(q ‖ π) = E_{z~q₀}[ log q₀(z) + U(q(z)) + |p(z)|²/2 ] + log Z``,

with ``Z = ∫ e^{−U(q) − |p|²/2} dq dp``. The loss is the bracket averaged over a reparameterized batch: its
minimum ``−log Z`` is reached exactly when ``q = π``, and every value is an upper bound on ``−log Z``
(the free energy). Reverse KL needs no samples of ``π``, only ``U`` and ``∇U``; it is mode-seeking, so
``train_sampler`` can anneal the inverse temperature ``β`` of ``π_β ∝ e^{−β(U + |p|²/2)}`` from
``beta_start`` to 1 over the first ``anneal`` fraction of the steps, which lets the flow spread over all
modes while the target is still flat. With learned auxiliary momenta (``FlowSampler(momentum="learned")``)
``|p|²/2`` is replaced by ``−log r(p | q)`` (``FlowSampler.joint_potential``) and the momentum network is trained
with the flow; the ``q``-marginal of the target, and so ``log Z``, are unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from canonflow.checkpoint import read_checkpoint
from canonflow.sampling.model import FlowSampler
from canonflow.sampling.potential import Potential
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.validation import check_positive_int, validation

__all__ = ["forward_kl_loss", "reverse_kl_loss", "train_sampler"]


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
    return (log_q + beta * model.joint_potential(potential, x)).mean()


def forward_kl_loss(
    model: FlowSampler,
    potential: Potential,
    batch_size: int,
    generator: torch.Generator | None = None,
    beta: float = 1.0,
) -> torch.Tensor:
    """``−Σ_i w̄_i log q_θ(x_i)``: forward KL ``KL(π_β ‖ q)`` (up to a constant) by self-normalized importance
    sampling, a 0-dim tensor.

    ``x_i ~ q`` (``batch_size`` draws, held fixed), ``log w_i = −β(U(q_i) + |p_i|²/2) − log q(x_i)`` and
    ``w̄ = softmax(log w)`` (no gradient through the draws or the weights), so the gradient
    ``−Σ_i w̄_i ∇_θ log q_θ(x_i)`` estimates ``−E_{π_β}[∇_θ log q_θ]``, the gradient of ``KL(π_β ‖ q)``.
    Draws with a non-finite weight get weight 0 (if all do, the loss is NaN and ``train`` stops with
    ``TrainingDiverged``). Learned auxiliary momenta are not trained by this term (they enter only the weights).
    Unlike reverse KL it is mass-covering: a mode of ``π`` that ``q`` reaches only rarely gets large weights and
    pulls mass towards it, which is how flows trained without samples of ``π`` avoid collapsing onto one mode
    (self-normalized-IS forward KL as in Boltzmann-generator training, Noé et al. 2019; Midgley et al. 2023).
    """
    with torch.no_grad(), validation(False):
        x, log_q = model.sample_with_log_prob(batch_size, generator)
        log_w = -beta * model.joint_potential(potential, x) - log_q
        finite = torch.isfinite(log_w)
        weights = torch.softmax(torch.where(finite, log_w, torch.full_like(log_w, -math.inf)), 0)
    if not finite.any():
        return log_w.new_tensor(math.nan)
    with validation(False):  # draws with non-finite weights are left out: 0 · log q(x) is NaN where x overflowed
        return -(weights[finite] * model.log_prob(x[finite])).sum()


OBJECTIVES = ("reverse", "forward", "both")


def train_sampler(
    model: FlowSampler,
    potential: Potential,
    config: TrainConfig,
    batch_size: int = 256,
    anneal: float = 0.0,
    beta_start: float = 0.1,
    validation_size: int = 2048,
    objective: str = "reverse",
) -> TrainResult:
    """Train ``model`` as a sampler of ``e^{−U(q) − |p|²/2}`` with ``canonflow.training.train`` (Adam, cosine
    schedule, tqdm progress, resumable checkpoints per ``config``); returns its ``TrainResult``.

    ``objective``: ``"reverse"`` minimizes ``reverse_kl_loss`` (mode-seeking; the loss is a bound on
    ``−log Z``); ``"forward"`` minimizes ``forward_kl_loss`` (mass-covering, self-normalized importance
    sampling); ``"both"`` their sum, whose fixed point is still ``q = π``: the reverse term fits the bulk with
    low-variance reparameterized gradients, the forward term keeps ``q``'s tails and minor modes wide enough that
    the importance weights ``π/q`` stay bounded, which is what flow-MCMC (independence MH) needs.
    ``β`` rises geometrically from ``beta_start`` to 1 over the first ``anneal · config.steps`` steps (``anneal
    = 0``: no annealing). Validation (every ``config.eval_every`` steps) is the ``β = 1`` reverse-KL loss on a
    fixed batch of ``validation_size`` draws, an upper bound on ``−log Z``; with ``objective="reverse"`` the best
    weights seen at ``β = 1`` are kept, otherwise the final ones (a mode-covering fit can have a worse reverse-KL
    bound than a collapsed one, so the bound must not select). A resumed run continues the annealing schedule
    from the checkpoint's step.
    """
    who = "train_sampler"
    check_positive_int(batch_size, "batch_size", who)
    if not 0 <= anneal <= 1:
        raise ValueError(f"{who}: expected 0 <= anneal <= 1, got {anneal}")
    if not 0 < beta_start <= 1:
        raise ValueError(f"{who}: expected 0 < beta_start <= 1, got {beta_start}")
    if objective not in OBJECTIVES:
        raise ValueError(f"{who}: unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    step = [0]
    if config.resume and config.checkpoint and Path(config.checkpoint).is_file():
        step[0] = int(read_checkpoint(config.checkpoint)["step"])
    anneal_steps = int(anneal * config.steps)

    def beta() -> float:
        if step[0] >= anneal_steps:
            return 1.0
        return beta_start ** (1.0 - step[0] / anneal_steps)

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        b = beta()
        value = reverse_kl_loss(model, potential, batch_size, generator, b) if objective != "forward" else 0.0
        if objective != "reverse":
            value = value + forward_kl_loss(model, potential, batch_size, generator, b)
        step[0] += 1
        return value

    def validate() -> float:
        if step[0] < anneal_steps:
            return float("inf")
        generator = torch.Generator().manual_seed(config.seed + 1)
        return float(reverse_kl_loss(model, potential, validation_size, generator))

    result = train(model, loss_fn, config, validate=validate if objective == "reverse" else None)
    if objective != "reverse":
        with torch.no_grad():
            result.best_validation = validate()
    return result
