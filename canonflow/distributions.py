"""Base distributions on phase space, as nflows ``Distribution`` objects."""

from __future__ import annotations

import math

import torch
from nflows.distributions import Distribution

from canonflow.validation import check_phase_space, check_positive_int

__all__ = ["PhaseSpaceNormal", "OscillatorBase", "DiagonalPhaseSpaceNormal"]


class PhaseSpaceNormal(Distribution):
    """The standard normal ``N(0, I)`` on ``ℝ²ⁿ``: ``log p(x) = -|x|²/2 - n ln 2π`` for ``x`` of shape ``(B, 2n)``.

    Unlike nflows' ``StandardNormal`` (which always samples float32), samples and log-densities follow the
    module's dtype and device, so ``Flow(transform, PhaseSpaceNormal(n)).double()`` works end to end.
    Unconditional: ``context`` must be ``None``.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = check_positive_int(n, "n", type(self).__name__)
        self.register_buffer("_anchor", torch.zeros(()))

    def _no_context(self, context: torch.Tensor | None) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__}: this distribution is unconditional; context must be None")

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        check_phase_space(inputs, self.n, f"{type(self).__name__}.log_prob", self._anchor)
        return -0.5 * inputs.pow(2).sum(-1) - self.n * math.log(2 * math.pi)

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return torch.randn(num_samples, 2 * self.n, dtype=self._anchor.dtype, device=self._anchor.device)

    def from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Reparametrized sampling: standard normal ``noise`` of shape ``(B, 2n)`` is already a sample."""
        check_phase_space(noise, self.n, f"{type(self).__name__}.from_noise", self._anchor)
        return noise

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return self._anchor.new_zeros(2 * self.n)


class OscillatorBase(Distribution):
    """The Boltzmann distribution ``e^{-βK}/Z_K`` of ``n`` independent oscillators on ``ℝ²ⁿ``.

    In latent coordinates ``z = [Q, P]`` of shape ``(B, 2n)`` the latent Hamiltonian is
    ``K(Q, P) = Σ_k ω_k (Q_k² + P_k²)/2`` with learnable frequencies ``ω_k = exp(log_frequency_k) > 0``, so

    ``log p(z) = -β Σ_k ω_k (Q_k² + P_k²)/2 + Σ_k ln(β ω_k / 2π)``,  ``Z_K = Π_k 2π/(β ω_k)``,

    i.e. ``Q_k, P_k ~ N(0, 1/(β ω_k))`` independently. A canonical flow has unit Jacobian, so pulled back
    through a flow ``T`` the model density is ``q(x) = e^{-βK(T(x))}/Z_K``: the model is itself a Boltzmann
    distribution with Hamiltonian ``K∘T`` and the learnable ``ω`` set its normalization (a volume-preserving
    map from the fixed ``N(0, I)`` could only reach targets with ``Z = (2π)ⁿ``). A quadratic ``H`` is
    represented exactly: the normal-mode map followed by a symplectic scaling takes
    ``H = Σ_k (P_k² + ω_k² Q_k²)/2`` to ``K``, and the learned ``ω_k`` are then the normal-mode frequencies.

    ``beta`` (``> 0``) is fixed; ``frequencies`` (``(n,)``, positive) sets the initial ``ω`` (default all 1).
    Samples and log-densities follow the module's dtype and device. Unconditional: ``context`` must be ``None``.
    """

    def __init__(self, n: int, beta: float = 1.0, frequencies: torch.Tensor | None = None) -> None:
        super().__init__()
        who = type(self).__name__
        self.n = check_positive_int(n, "n", who)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
            raise ValueError(f"{who}: expected a finite beta > 0, got {beta!r}")
        self.beta = float(beta)
        if frequencies is None:
            log_frequency = torch.zeros(n)
        else:
            frequencies = torch.as_tensor(frequencies, dtype=torch.get_default_dtype())
            if frequencies.shape != (n,) or not bool((frequencies > 0).all()) or not bool(frequencies.isfinite().all()):
                raise ValueError(f"{who}: expected {n} positive finite frequencies, got {frequencies}")
            log_frequency = frequencies.log()
        self.log_frequency = torch.nn.Parameter(log_frequency)

    def extra_repr(self) -> str:
        return f"n={self.n}, beta={self.beta}"

    @property
    def frequencies(self) -> torch.Tensor:
        """``ω = exp(log_frequency)``, shape ``(n,)``."""
        return self.log_frequency.exp()

    def _no_context(self, context: torch.Tensor | None) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__}: this distribution is unconditional; context must be None")

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """The latent Hamiltonian ``K(z) = Σ_k ω_k (Q_k² + P_k²)/2`` of ``z`` of shape ``(B, 2n)`` -> ``(B,)``."""
        check_phase_space(z, self.n, f"{type(self).__name__}.energy", self.log_frequency)
        return 0.5 * (z.pow(2).unflatten(-1, (2, self.n)).sum(-2) * self.frequencies).sum(-1)

    def log_partition(self) -> torch.Tensor:
        """``ln Z_K = Σ_k ln(2π/(β ω_k))`` (a scalar tensor)."""
        return (2 * math.pi / self.beta * (-self.log_frequency).exp()).log().sum()

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        check_phase_space(inputs, self.n, f"{type(self).__name__}.log_prob", self.log_frequency)
        return -self.beta * self.energy(inputs) - self.log_partition()

    def from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Reparametrized sampling: ``z = ε / sqrt(β ω)`` for standard normal ``ε`` of shape ``(B, 2n)``.

        Differentiable in ``ω``, so reverse-KL training can draw its noise from its own ``torch.Generator``.
        """
        check_phase_space(noise, self.n, f"{type(self).__name__}.from_noise", self.log_frequency)
        scale = (-0.5 * (self.log_frequency + math.log(self.beta))).exp()
        return noise * torch.cat([scale, scale])

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        noise = torch.randn(num_samples, 2 * self.n, dtype=self.log_frequency.dtype, device=self.log_frequency.device)
        return self.from_noise(noise)

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return self.log_frequency.new_zeros(2 * self.n)


class DiagonalPhaseSpaceNormal(Distribution):
    """``N(μ, diag σ²)`` on ``ℝ²ⁿ`` with learnable ``μ`` and ``log σ`` (start at ``0``): a base distribution
    that can carry a target's scale and normalization, which canonical layers (``log|det J| = 0``) cannot.

    ``log p(x) = −Σ_i [(x_i − μ_i)²/(2σ_i²) + log σ_i] − n ln 2π`` for ``x`` of shape ``(B, 2n)``.
    ``rsample(num, generator)`` draws ``μ + σ ⊙ ε`` reparameterized (differentiable in ``μ, σ``).
    Unconditional: ``context`` must be ``None``. The sampling module's base; ``OscillatorBase`` is the one with
    per-mode frequencies used for free energies.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = check_positive_int(n, "n", type(self).__name__)
        self.loc = torch.nn.Parameter(torch.zeros(2 * self.n))
        self.log_scale = torch.nn.Parameter(torch.zeros(2 * self.n))

    def _no_context(self, context: torch.Tensor | None) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__}: this distribution is unconditional; context must be None")

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        check_phase_space(inputs, self.n, f"{type(self).__name__}.log_prob", self.loc)
        z = (inputs - self.loc) * torch.exp(-self.log_scale)
        return -0.5 * z.pow(2).sum(-1) - self.log_scale.sum() - self.n * math.log(2 * math.pi)

    def rsample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num_samples`` reparameterized draws ``μ + σ ⊙ ε``, ``ε ~ N(0, I)``; shape ``(num_samples, 2n)``."""
        check_positive_int(num_samples, "num_samples", f"{type(self).__name__}.rsample")
        eps = torch.randn(num_samples, 2 * self.n, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + torch.exp(self.log_scale) * eps

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return self.rsample(num_samples).detach()

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return self.loc.detach().clone()
