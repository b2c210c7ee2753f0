"""The result object shared by the MCMC samplers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from canonflow.sampling.diagnostics import ess_bulk, ess_tail, mcse_mean, rhat

__all__ = ["SamplingResult"]


@dataclass
class SamplingResult:
    """Draws of a batch of Markov chains and what it cost to get them.

    ``samples``: ``(num_samples, chains, d)`` after warm-up. ``accept_prob``: the Metropolis–Hastings
    acceptance probability of every transition, ``(num_samples, chains)`` (0 for divergent ones);
    ``accepted``: whether it was accepted. ``divergent``: transitions flagged divergent (energy error above the
    threshold or non-finite); they are always rejected. ``warmup_divergences``: the count during warm-up.
    ``step_size`` (the median of the per-chain ``step_sizes`` ``(chains,)``), ``inverse_mass`` (``(d,)`` or
    ``(d, d)``) and ``num_steps`` describe the HMC/NUTS kernel (``None`` for other samplers; NUTS has no fixed
    ``num_steps``, its per-transition ``tree_depth`` and ``n_leapfrog`` ``(num_samples, chains)`` are in ``extra``).
    ``gradient_evaluations`` and ``potential_evaluations`` count per-chain evaluations of ``∇U`` and of
    ``U`` alone (a gradient evaluation also yields ``U``) during sampling; the ``warmup_*`` fields count those of
    warm-up (and step-size search). ``seconds``: wall time of sampling, ``warmup_seconds`` of warm-up.
    """

    samples: torch.Tensor
    accept_prob: torch.Tensor
    accepted: torch.Tensor
    divergent: torch.Tensor
    warmup_divergences: int = 0
    step_size: float | None = None
    step_sizes: torch.Tensor | None = None
    inverse_mass: torch.Tensor | None = None
    num_steps: int | None = None
    gradient_evaluations: int = 0
    potential_evaluations: int = 0
    warmup_gradient_evaluations: int = 0
    warmup_potential_evaluations: int = 0
    seconds: float = 0.0
    warmup_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float:
        """Mean Metropolis–Hastings acceptance probability over all post-warm-up transitions."""
        return float(self.accept_prob.mean())

    @property
    def num_divergent(self) -> int:
        """Number of divergent post-warm-up transitions."""
        return int(self.divergent.sum())

    @property
    def evaluations(self) -> int:
        """``gradient_evaluations + potential_evaluations`` (each counts as one evaluation of the target)."""
        return self.gradient_evaluations + self.potential_evaluations

    def summary(self) -> dict[str, np.ndarray | float]:
        """Per-coordinate mean, variance, MCSE of the mean, bulk/tail ESS and split R̂ of ``samples``."""
        draws = self.samples.detach().double().cpu().numpy()
        flat = draws.reshape(-1, draws.shape[-1])
        return {
            "mean": flat.mean(0),
            "variance": flat.var(0, ddof=1),
            "mcse_mean": np.asarray(mcse_mean(draws)),
            "ess_bulk": np.asarray(ess_bulk(draws)),
            "ess_tail": np.asarray(ess_tail(draws)),
            "rhat": np.asarray(rhat(draws)),
        }

    def to_arviz(self, space: Any = None) -> Any:
        """The draws as an ``arviz.InferenceData``: posterior ``q`` of shape ``(chains, draws, d)``, sample stats
        ``acceptance_rate`` and ``diverging`` ``(chains, draws)`` (and ``tree_depth``, ``n_steps`` for NUTS). With a
        :class:`~canonflow.sampling.ParameterSpace` ``space``, the posterior holds its named parameters on the
        constrained scale instead, ``(chains, draws, *shape)``. Needs the optional extra ``canonflow[arviz]``."""
        try:
            import arviz
        except ImportError as error:
            raise ImportError("SamplingResult.to_arviz needs arviz: pip install 'canonflow[arviz]'") from error
        stats = {
            "acceptance_rate": self.accept_prob.detach().cpu().double().numpy().T,
            "diverging": self.divergent.detach().cpu().numpy().T,
        }
        if "tree_depth" in self.extra:
            stats["tree_depth"] = self.extra["tree_depth"].cpu().numpy().T
            stats["n_steps"] = self.extra["n_leapfrog"].cpu().numpy().T
        if space is None:
            posterior = {"q": self.samples.detach().cpu().double().numpy().swapaxes(0, 1)}
        else:
            constrained = space.constrain(self.samples.detach())
            posterior = {name: value.cpu().double().numpy().swapaxes(0, 1) for name, value in constrained.items()}
        return arviz.from_dict(posterior=posterior, sample_stats=stats)
