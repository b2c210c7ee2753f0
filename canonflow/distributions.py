"""Base distributions on phase space, as nflows ``Distribution`` objects."""

from __future__ import annotations

import math

import torch
from nflows.distributions import Distribution

from canonflow.validation import check_phase_space, check_positive_int

__all__ = ["PhaseSpaceNormal", "OscillatorBase", "OscillatorMixture", "DiagonalPhaseSpaceNormal"]


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


class OscillatorMixture(Distribution):
    """A mixture of ``K`` oscillator Boltzmann distributions (Gaussians) on ``ℝ²ⁿ``, each with its own centre.

    Component ``k`` has centre ``μ_k ∈ ℝ²ⁿ``, latent Hamiltonian ``K_k(z) = Σ_j ω_kj ((Q_j − μ^Q_kj)² +
    (P_j − μ^P_kj)²)/2`` with learnable frequencies ``ω_kj = exp(log_frequency_kj) > 0`` and weight
    ``w_k = softmax(logits)_k``; for ``z = [Q, P]`` of shape ``(B, 2n)``

    ``log p(z) = logsumexp_k [ln w_k − β K_k(z) + Σ_j ln(β ω_kj / 2π)]``,

    i.e. component ``k`` is ``N(μ_k, diag(1/(β ω_k), 1/(β ω_k)))`` (``Q_j`` and ``P_j`` share ``ω_kj``, as in
    :class:`OscillatorBase`, which is the case ``K = 1``, ``μ = 0``). Pulled back through a canonical flow ``T``
    (unit Jacobian) the model is ``q(x) = p(T(x))``: the base, not the flow, carries the normalization and the
    distribution of density values, which a volume-preserving map cannot change.

    Parameters: ``n`` (degrees of freedom), ``components`` ``K``, ``beta`` (``> 0``, fixed), ``centres`` (initial
    ``μ``, ``K`` rows of ``2n`` floats, e.g. nested lists), ``radius`` (``≥ 0``; used when ``centres`` is
    ``None``: ``μ_k = radius (cos 2πk/K, sin 2πk/K)`` in the first two latent coordinates ``(Q_1, Q_2)``, or
    ``(Q_1, P_1)`` when ``n = 1``, zero elsewhere; the default ``0`` puts every centre at the origin, a symmetric
    start that only the sampling noise breaks), ``frequencies`` (initial ``ω`` of every component, ``n``
    positive floats; default all 1). The logits start at 0 (equal weights).

    Reverse-KL training cannot differentiate a discrete component choice, so the mixture offers the exact
    stratified estimator: :meth:`strata` assigns sample ``i`` of a batch of ``B ≥ K`` to component ``i mod K``,
    :meth:`from_noise` maps standard normal noise to ``μ_k + σ_k ε`` for those components, and
    :meth:`noise_weights` gives each sample the weight ``w_k B / B_k`` (``B_k`` samples in component ``k``), so
    ``mean_i(weight_i f(z_i))`` is an unbiased estimate of ``E_p[f]`` that is differentiable in ``μ``, ``ω`` and
    the logits. :meth:`sample` and :meth:`draw_components` give ordinary i.i.d. draws. Samples and
    log-densities follow the module's dtype and device. Unconditional: ``context`` must be ``None``.
    """

    def __init__(
        self,
        n: int,
        components: int,
        beta: float = 1.0,
        centres: list | torch.Tensor | None = None,
        radius: float = 0.0,
        frequencies: list | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n = check_positive_int(n, "n", who)
        self.components = check_positive_int(components, "components", who)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
            raise ValueError(f"{who}: expected a finite beta > 0, got {beta!r}")
        self.beta = float(beta)
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius < 0:
            raise ValueError(f"{who}: expected a finite radius >= 0, got {radius!r}")
        dtype = torch.get_default_dtype()
        if centres is None:
            angle = 2 * math.pi * torch.arange(components, dtype=torch.float64) / components
            loc = torch.zeros(components, 2 * n, dtype=torch.float64)
            second = 1 if n >= 2 else n
            loc[:, 0], loc[:, second] = radius * angle.cos(), radius * angle.sin()
            loc = loc.to(dtype)
        else:
            if radius:
                raise ValueError(f"{who}: give either centres or a radius, not both")
            try:
                loc = torch.as_tensor(centres, dtype=dtype).clone()
            except (TypeError, ValueError, RuntimeError) as error:
                raise ValueError(f"{who}: centres must be {components} rows of {2 * n} numbers") from error
            if loc.shape != (components, 2 * n) or not bool(loc.isfinite().all()):
                raise ValueError(
                    f"{who}: expected finite centres of shape ({components}, {2 * n}), got {tuple(loc.shape)}"
                )
        if frequencies is None:
            log_frequency = torch.zeros(components, n)
        else:
            try:
                frequencies = torch.as_tensor(frequencies, dtype=dtype)
            except (TypeError, ValueError, RuntimeError) as error:
                raise ValueError(f"{who}: frequencies must be {n} positive numbers") from error
            if frequencies.shape != (n,) or not bool(frequencies.isfinite().all()) or not bool((frequencies > 0).all()):
                raise ValueError(f"{who}: expected {n} positive finite frequencies, got {frequencies}")
            log_frequency = frequencies.log().expand(components, n).clone()
        self.loc = torch.nn.Parameter(loc)
        self.log_frequency = torch.nn.Parameter(log_frequency)
        self.logits = torch.nn.Parameter(torch.zeros(components))

    def extra_repr(self) -> str:
        return f"n={self.n}, components={self.components}, beta={self.beta}"

    @property
    def frequencies(self) -> torch.Tensor:
        """``ω = exp(log_frequency)``, shape ``(K, n)``."""
        return self.log_frequency.exp()

    @property
    def weights(self) -> torch.Tensor:
        """The mixture weights ``w = softmax(logits)``, shape ``(K,)``."""
        return self.logits.softmax(0)

    def _no_context(self, context: torch.Tensor | None) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__}: this distribution is unconditional; context must be None")

    def _scale(self) -> torch.Tensor:
        """Per-component standard deviations ``1/sqrt(β ω)`` of ``[Q, P]``, shape ``(K, 2n)``."""
        scale = (-0.5 * (self.log_frequency + math.log(self.beta))).exp()
        return torch.cat([scale, scale], -1)

    def component_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``ln N_k(z)`` of every component (without the weights) for ``z`` ``(B, 2n)`` -> ``(B, K)``."""
        check_phase_space(z, self.n, f"{type(self).__name__}.component_log_prob", self.loc)
        squared = (z[:, None, :] - self.loc).pow(2).unflatten(-1, (2, self.n)).sum(-2)  # (B, K, n)
        energy = 0.5 * (squared * self.frequencies).sum(-1)
        log_norm = (self.log_frequency + math.log(self.beta / (2 * math.pi))).sum(-1)
        return -self.beta * energy + log_norm

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        check_phase_space(inputs, self.n, f"{type(self).__name__}.log_prob", self.loc)
        return torch.logsumexp(self.component_log_prob(inputs) + self.logits.log_softmax(0), -1)

    def strata(self, batch: int) -> torch.Tensor:
        """The stratified component of each of ``batch`` samples, ``i mod K``, shape ``(batch,)`` (int64).

        ``batch`` must be at least ``K`` so that every component is represented."""
        who = f"{type(self).__name__}.strata"
        check_positive_int(batch, "batch", who)
        if batch < self.components:
            raise ValueError(f"{who}: a stratified batch needs at least K = {self.components} samples, got {batch}")
        return torch.arange(batch, device=self.loc.device) % self.components

    def noise_weights(self, batch: int) -> torch.Tensor:
        """Each stratified sample's weight ``w_k B / B_k`` (``k = i mod K``, ``B_k`` samples in component ``k``),
        shape ``(batch,)``; ``mean_i(weight_i f(z_i))`` estimates ``E_p[f]`` without bias and the weights are
        differentiable in the logits (``= w_k K`` when ``K`` divides ``batch``)."""
        strata = self.strata(batch)
        counts = torch.bincount(strata, minlength=self.components).to(self.logits.dtype)
        return (self.weights * batch / counts)[strata]

    def draw_components(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` i.i.d. component indices ``k ~ w`` (no gradient), shape ``(num,)`` (int64)."""
        check_positive_int(num, "num", f"{type(self).__name__}.draw_components")
        weights = self.weights.detach().double().cpu()
        return torch.multinomial(weights, num, replacement=True, generator=generator).to(self.loc.device)

    def from_noise(self, noise: torch.Tensor, components: torch.Tensor | None = None) -> torch.Tensor:
        """``z_i = μ_k + ε_i / sqrt(β ω_k)``, ``k = components[i]``, for standard normal ``noise`` ``(B, 2n)``.

        ``components`` (int, ``(B,)``) defaults to the stratified :meth:`strata` (``i mod K``; then weight the
        samples with :meth:`noise_weights`); with :meth:`draw_components` the ``z_i`` are i.i.d. draws of the
        mixture. Differentiable in ``μ`` and ``ω``.
        """
        who = f"{type(self).__name__}.from_noise"
        check_phase_space(noise, self.n, who, self.loc)
        if components is None:
            components = self.strata(len(noise))
        elif (
            not isinstance(components, torch.Tensor)
            or components.shape != (len(noise),)
            or components.is_floating_point()
            or components.is_complex()
            or (len(components) and (int(components.min()) < 0 or int(components.max()) >= self.components))
        ):
            raise ValueError(f"{who}: expected components as {len(noise)} integers in [0, {self.components})")
        components = components.to(self.loc.device)
        return self.loc[components] + noise * self._scale()[components]

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        noise = torch.randn(num_samples, 2 * self.n, dtype=self.loc.dtype, device=self.loc.device)
        return self.from_noise(noise, self.draw_components(num_samples))

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return (self.weights[:, None] * self.loc).sum(0)


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
