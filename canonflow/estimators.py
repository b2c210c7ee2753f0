"""Estimators for a flow ``q`` fitted to a Boltzmann distribution ``π_β = e^{−βE}/Z_β``, written once.

With draws ``x ~ q`` and their exact ``log q(x)`` (a canonical flow has unit Jacobian) the log importance weights
are ``log w = −βE(x) − log q(x)``, ``E_q[w] = Z_β``. From them:

- the reverse KL ``KL(q ‖ π_β) = E_q[log q + βE] + ln Z_β`` (:func:`reverse_kl`: its minibatch value, with the
  path-derivative or the total gradient), whose expectation is ``β F_var ≥ β F``, ``F = −ln Z_β/β``;
- the forward KL ``KL(π_β ‖ q)`` up to a constant by self-normalized importance sampling (:func:`forward_kl`);
- ``F_var = −mean(log w)/β``, ``F_IS = −ln mean(w)/β`` ± standard errors, the Kish ESS ``(Σw)²/Σw²``
  (:func:`free_energy`; the exact ``F`` where the energy knows it: :func:`exact_free_energy`), ``ln Ẑ = ln mean(w)``
  (:func:`log_normalizer`) and self-normalized expectations (:func:`importance_expectation`).

``energy`` maps ``(B, 2n) -> (B,)``; everything is in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from canonflow.flow import CanonicalFlow, check_flow
from canonflow.validation import (
    check_choice,
    check_energy,
    check_positive_float,
    check_positive_int,
    validation,
)

__all__ = [
    "GRADIENTS",
    "FreeEnergyEstimate",
    "reverse_kl",
    "forward_kl",
    "log_importance_weights",
    "free_energy",
    "exact_free_energy",
    "log_normalizer",
    "kish_ess",
    "importance_expectation",
]

Energy = Callable[[torch.Tensor], torch.Tensor]
GRADIENTS = ("path", "total")


class _LogDensity(torch.nn.Module):
    """``x -> log q(x)`` as a ``forward``, so ``torch.func.functional_call`` can evaluate it with detached
    parameters (nflows distributions refuse ``forward``)."""

    def __init__(self, flow: CanonicalFlow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(x)


def reverse_kl(
    flow: CanonicalFlow,
    energy: Energy,
    z: torch.Tensor,
    beta: float = 1.0,
    *,
    weights: torch.Tensor | None = None,
    gradient: str = "path",
) -> torch.Tensor:
    """``mean_i(weight_i [log q(x_i) + βE(x_i)])`` for ``x_i = T⁻¹(z_i)``: the minibatch reverse KL
    ``KL(q ‖ π_β) − ln Z_β`` (a 0-dim tensor), differentiable in the flow's parameters.

    ``z`` ``(B, 2n)``: reparametrized base draws (``flow.base.rsample``); ``weights`` ``(B,)``: the strata weights
    of a stratified mixture draw (``flow.base.strata_weights``), ``None`` for i.i.d. draws. Divide by ``β`` for
    the variational free energy ``F_var``.

    ``gradient``: with ``x = x(θ, ε)``, ``∇_θ E[log q_θ(x) + βE(x)]`` is the path term through ``x`` plus the
    score term ``E_q[∂_θ log q_θ] = 0``. ``"total"`` differentiates everything, so each draw carries the
    zero-mean score term as noise; ``"path"`` (the path-derivative, "sticking the landing" estimator of Roeder,
    Wu & Duvenaud 2017) drops it by evaluating ``log q`` at ``x`` with the parameters detached (one more forward
    pass). Both are unbiased; when ``q = π_β`` every draw's path gradient is exactly zero. The value is the same.
    """
    who = "reverse_kl"
    check_flow(flow, who)
    check_choice(gradient, GRADIENTS, "gradient", who)
    beta = check_positive_float(beta, "beta", who)
    x, log_q = flow.push(z)
    if gradient == "path":
        detached = {f"flow.{name}": parameter.detach() for name, parameter in flow.named_parameters()}
        log_q = torch.func.functional_call(_LogDensity(flow), detached, (x,))
    values = log_q + beta * check_energy(energy(x), len(x), who)
    return (values if weights is None else weights * values).mean()


def forward_kl(
    flow: CanonicalFlow,
    energy: Energy,
    num: int,
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``−Σ_i w̄_i log q_θ(x_i)``: ``KL(π_β ‖ q)`` up to a constant by self-normalized importance sampling.

    ``x_i ~ q`` (``num`` i.i.d. draws, held fixed), ``w̄ = softmax(log w)`` with no gradient through the draws or
    the weights, so the gradient ``−Σ_i w̄_i ∇_θ log q_θ(x_i)`` estimates ``−E_{π_β}[∇_θ log q_θ]``. Mass-covering:
    a mode ``q`` reaches rarely gets large weights and pulls mass towards it (Noé et al. 2019; Midgley et al.
    2023). Draws with a non-finite weight get weight 0 (if all do, the loss is NaN and ``train`` stops with
    ``TrainingDiverged``); parameters that enter only ``energy`` are not trained by this term.
    """
    who = "forward_kl"
    check_flow(flow, who)
    beta = check_positive_float(beta, "beta", who)
    with torch.no_grad(), validation(False):
        x, log_q = flow.sample_and_log_prob(num, generator)
        log_w = -beta * check_energy(energy(x), num, who) - log_q
        finite = torch.isfinite(log_w)
        weights = torch.softmax(torch.where(finite, log_w, torch.full_like(log_w, -math.inf)), 0)
    if not finite.any():
        return log_w.new_tensor(math.nan)
    with validation(False):  # non-finite draws are left out: 0 · log q(x) is NaN where x overflowed
        return -(weights[finite] * flow.log_prob(x[finite])).sum()


def log_importance_weights(
    flow: CanonicalFlow,
    energy: Energy,
    beta: float = 1.0,
    num: int = 100_000,
    generator: torch.Generator | None = None,
    batch_size: int = 10_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` i.i.d. draws ``x ~ q`` ``(num, 2n)`` and ``log w = −βE(x) − log q(x)`` ``(num,)``, without a graph.

    ``E_q[w f] = Z_β E_{π_β}[f]``. Non-finite weights are returned as they are: each caller decides (a free
    energy refuses them, an MCMC proposal with one is rejected)."""
    who = "log_importance_weights"
    check_flow(flow, who)
    beta = check_positive_float(beta, "beta", who)
    check_positive_int(num, "num", who)
    check_positive_int(batch_size, "batch_size", who)
    xs, log_ws = [], []
    with torch.no_grad(), validation(False):
        for start in range(0, num, batch_size):
            size = min(batch_size, num - start)
            x, log_q = flow.sample_and_log_prob(size, generator)
            log_ws.append(-beta * check_energy(energy(x), size, who) - log_q)
            xs.append(x)
    return torch.cat(xs), torch.cat(log_ws)


ESTIMATES = ("variational", "importance")
"""The two free-energy estimates of a :class:`FreeEnergyEstimate`."""


@dataclass
class FreeEnergyEstimate:
    """Free energies in nats from ``num_samples`` draws at inverse temperature ``beta``.

    ``variational`` = ``−mean(log w)/β`` (an upper bound on ``F`` in expectation), ``importance`` =
    ``−ln mean(w)/β`` (consistent; biased upwards by ``≈ Var(w)/(2N mean(w)²β)``), each with a standard error;
    ``ess = (Σw)²/Σw²`` and ``ess_fraction = ess/num_samples``.
    """

    variational: float
    variational_stderr: float
    importance: float
    importance_stderr: float
    ess: float
    ess_fraction: float
    num_samples: int
    beta: float

    def as_dict(self, exact: float | None = None) -> dict[str, float | None]:
        """The fields as a plain dict (for JSON); with the exact free energy ``exact``, also each estimate's error
        ``variational_error`` and ``importance_error`` (``None`` when ``exact`` is ``None``)."""
        errors = {f"{key}_error": None if exact is None else getattr(self, key) - exact for key in ESTIMATES}
        return dict(self.__dict__) | errors


def log_normalizer(log_weights: torch.Tensor) -> float:
    """``ln mean(w)`` of log weights ``(N,)`` (``−∞`` entries allowed), computed stably: the estimate of ``ln Z``."""
    return float(torch.logsumexp(log_weights.double(), 0) - math.log(log_weights.numel()))


def kish_ess(log_weights: torch.Tensor) -> float:
    """The Kish effective sample size ``(Σw)²/Σw²`` of log weights ``(N,)``."""
    return float(1.0 / torch.softmax(log_weights.double(), 0).pow(2).sum())


def free_energy(
    flow: CanonicalFlow,
    energy: Energy,
    beta: float = 1.0,
    num_samples: int = 100_000,
    generator: torch.Generator | None = None,
    batch_size: int = 10_000,
) -> FreeEnergyEstimate:
    """``F_var`` and ``F_IS`` of ``e^{−βE}`` with standard errors and ESS, from ``num_samples`` draws of ``flow``.

    With ``log w_i = −βE(x_i) − log q(x_i)``: ``F_var = −mean(log w)/β`` with standard error
    ``std(log w)/(β√N)``; ``F_IS = −ln mean(w)/β`` with the delta-method standard error
    ``std(w)/(β √N mean(w))``; ``ESS = (Σw)²/Σw²``. Computed in float64 with max-shifted weights.
    """
    who = "free_energy"
    beta = check_positive_float(beta, "beta", who)
    _, log_w = log_importance_weights(flow, energy, beta, num_samples, generator, batch_size)
    log_w = log_w.double()
    count = log_w.numel()
    if not torch.isfinite(log_w).all():
        raise ValueError(f"{who}: non-finite log weights (the energy or the model produced NaN/Inf)")
    shifted = (log_w - log_w.max()).exp()
    mean_w = shifted.mean()
    relative_se = float(shifted.std() / mean_w) / math.sqrt(count) if count > 1 else math.inf
    ess = kish_ess(log_w)
    return FreeEnergyEstimate(
        variational=float(-log_w.mean()) / beta,
        variational_stderr=(float(log_w.std()) / math.sqrt(count) if count > 1 else math.inf) / beta,
        importance=-log_normalizer(log_w) / beta,
        importance_stderr=relative_se / beta,
        ess=ess,
        ess_fraction=ess / count,
        num_samples=count,
        beta=beta,
    )


def exact_free_energy(energy: Energy, beta: float) -> float | None:
    """The exact ``F(β) = −ln Z_β/β`` of ``energy`` when it has a ``free_energy(beta)`` method (as the catalogue's
    oscillator, harmonic chain, double well and Ring2D do), else ``None``."""
    exact = getattr(energy, "free_energy", None)
    return None if exact is None else exact(beta)


def importance_expectation(values: torch.Tensor, log_weights: torch.Tensor) -> tuple[float, float, float]:
    """Self-normalized importance estimate of ``E_π[f]``: ``(Σ w_i f_i / Σ w_i, stderr, ESS)``.

    ``values`` ``f_i`` and ``log_weights`` are ``(N,)``. The standard error is the delta-method
    ``sqrt(Σ w̄_i² (f_i − μ)²)`` with normalized weights ``w̄``.
    """
    who = "importance_expectation"
    if values.shape != log_weights.shape or values.dim() != 1 or values.numel() == 0:
        raise ValueError(
            f"{who}: expected values and log_weights of equal shape (N,), got "
            f"{tuple(values.shape)} and {tuple(log_weights.shape)}"
        )
    weights = torch.softmax(log_weights.double(), 0)
    f = values.double()
    mean = (weights * f).sum()
    stderr = (weights.pow(2) * (f - mean).pow(2)).sum().sqrt()
    return float(mean), float(stderr), float(1.0 / weights.pow(2).sum())
