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

import torch

from canonflow.estimators import forward_kl, reverse_kl
from canonflow.sampling.model import FlowSampler, joint_energy
from canonflow.sampling.potential import Potential
from canonflow.sampling.precondition import PRECONDITIONERS, Preconditioner, fit_preconditioner
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.validation import check_positive_int, validation

__all__ = ["OBJECTIVES", "train_sampler"]


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
    precondition: str | Preconditioner = "moments",
) -> TrainResult:
    """Train ``model`` as a sampler of ``e^{−U(q) − |p|²/2}`` with ``canonflow.training.train`` (Adam, cosine
    schedule, tqdm progress, resumable checkpoints per ``config``); returns its ``TrainResult``.

    ``objective``: ``"reverse"`` minimizes :func:`canonflow.estimators.reverse_kl` with the total gradient
    (mode-seeking; the loss is a bound on ``−log Z``); ``"forward"`` minimizes
    :func:`canonflow.estimators.forward_kl` (mass-covering, self-normalized importance sampling); ``"both"``
    their sum, whose fixed point is still ``q = π``: the reverse term fits the bulk with low-variance reparameterized
    gradients, the forward term keeps ``q``'s tails and minor modes wide enough that the importance weights ``π/q``
    stay bounded, which is what flow-MCMC (independence MH) needs.
    ``β`` rises geometrically from ``beta_start`` to 1 over the first ``anneal · config.steps`` steps (``anneal
    = 0``: no annealing). Validation (every ``config.eval_every`` steps) is the ``β = 1`` reverse-KL loss on a
    fixed batch of ``validation_size`` draws, an upper bound on ``−log Z``; with ``objective="reverse"`` the best
    weights seen at ``β = 1`` are kept, otherwise the final ones (a mode-covering fit can have a worse reverse-KL
    bound than a collapsed one, so the bound must not select). A resumed run continues the annealing schedule
    from the checkpoint's step.

    ``precondition`` (on by default): before training, fit a Gaussian to ``π(q)`` and compose its exact affine map
    into the flow (:meth:`FlowSampler.precondition`, ``canonflow.sampling.precondition``), so training starts at
    the posterior's location and scale: ``"moments"`` (a short NUTS run's mean and covariance, robust to several
    modes and to unrepresentative modes), ``"laplace"`` (at the mode), a fitted
    :class:`~canonflow.sampling.precondition.Preconditioner` (e.g. to count its cost), or ``"none"``. A model that
    already has a preconditioner keeps it (``"none"`` or a given fit aside). The fit's draws use a generator seeded
    from ``config.seed``, so a resumed run rebuilds the same model before loading its checkpoint.
    """
    who = "train_sampler"
    check_positive_int(batch_size, "batch_size", who)
    if not 0 <= anneal <= 1:
        raise ValueError(f"{who}: expected 0 <= anneal <= 1, got {anneal}")
    if not 0 < beta_start <= 1:
        raise ValueError(f"{who}: expected 0 < beta_start <= 1, got {beta_start}")
    if objective not in OBJECTIVES:
        raise ValueError(f"{who}: unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    if isinstance(precondition, Preconditioner):
        model.precondition(precondition)
    elif precondition not in PRECONDITIONERS:
        raise ValueError(
            f"{who}: unknown precondition {precondition!r}; expected a Preconditioner or one of "
            f"{', '.join(PRECONDITIONERS)}"
        )
    elif precondition != "none" and model.preconditioner is None:
        generator = torch.Generator().manual_seed(config.seed + 2)
        model.precondition(fit_preconditioner(potential, model.n, precondition, generator=generator))
    step = [0]
    anneal_steps = int(anneal * config.steps)

    def beta() -> float:
        if step[0] >= anneal_steps:
            return 1.0
        return beta_start ** (1.0 - step[0] / anneal_steps)

    energy = joint_energy(model, potential)

    def reverse(size: int, generator: torch.Generator, b: float) -> torch.Tensor:
        with validation(False):
            return reverse_kl(model, energy, model.base.rsample(size, generator), b, gradient="total")

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        b = beta()
        value = reverse(batch_size, generator, b) if objective != "forward" else 0.0
        if objective != "reverse":
            value = value + forward_kl(model, energy, batch_size, b, generator)
        step[0] += 1
        return value

    def validate() -> float:
        if step[0] < anneal_steps:
            return float("inf")
        return float(reverse(validation_size, torch.Generator().manual_seed(config.seed + 1), 1.0))

    def start(first: int) -> None:
        step[0] = first

    result = train(model, loss_fn, config, validate=validate if objective == "reverse" else None, on_start=start)
    if objective != "reverse":
        with torch.no_grad():
            result.best_validation = validate()
    return result
