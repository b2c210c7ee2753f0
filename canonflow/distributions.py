"""The base distribution of every canonical flow: one family of Gaussians (and Gaussian mixtures) on phase space.

A canonical flow has unit Jacobian, so it cannot change a density's normalization or spread: the base carries
them. :class:`PhaseSpaceGaussian` covers every base canonflow uses, with one reparametrized draw
(:meth:`~PhaseSpaceGaussian.rsample`) and one ``log_prob``:

=========================================  =====================================================================
``PhaseSpaceGaussian.standard(n)``         ``N(0, I)``, nothing learned (action-angle, density baselines)
``PhaseSpaceGaussian.oscillator(n, β)``    ``e^{−βK}/Z_K`` with learned per-mode frequencies ``ω`` (free energies)
``PhaseSpaceGaussian.mixture(n, K, β)``    ``K`` oscillator components with learned centres, ``ω`` and weights
``PhaseSpaceGaussian.diagonal(n)``         ``N(μ, diag σ²)`` with learned ``μ`` and per-coordinate ``σ`` (sampling)
=========================================  =====================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from nflows.distributions import Distribution

from canonflow.validation import check_choice, check_phase_space, check_positive_float, check_positive_int

__all__ = ["PhaseSpaceGaussian", "SCALES", "LEARNABLE"]

SCALES = ("mode", "coordinate")
LEARNABLE = ("loc", "scale", "weights")


class PhaseSpaceGaussian(Distribution):
    """A mixture of ``K`` Gaussians on ``ℝ²ⁿ`` (``K = 1``: one Gaussian), an nflows ``Distribution``.

    Component ``k`` is ``N(μ_k, diag σ_k²)`` with weight ``w_k = softmax(logits)_k``; for ``z = [Q, P]`` of
    shape ``(B, 2n)``

    ``log p(z) = logsumexp_k [ln w_k − Σ_i (z_i − μ_ki)²/(2σ_ki²) − Σ_i ln σ_ki] − n ln 2π``.

    ``scale="mode"`` ties the ``Q_j`` and ``P_j`` scales of each mode to a frequency, ``σ_kj² = 1/(β ω_kj)``
    (``ω = exp(log_frequency)``, shape ``(K, n)``): component ``k`` is then the Boltzmann distribution
    ``e^{−βK_k}/Z_k`` of ``n`` oscillators, ``K_k(z) = Σ_j ω_kj ((Q_j − μ^Q_kj)² + (P_j − μ^P_kj)²)/2``.
    Pulled back through a canonical flow ``T`` the model ``e^{−βK(T(x))}/Z_K`` is itself a Boltzmann
    distribution whose normalization the learned ``ω`` set; a quadratic ``H`` is represented exactly (the
    learned ``ω`` are its normal-mode frequencies). ``scale="coordinate"`` gives every coordinate its own
    ``σ_ki = exp(log_scale_ki)/√β`` (shape ``(K, 2n)``).

    Args:
        n: degrees of freedom.
        components: ``K``.
        scale: ``"mode"`` or ``"coordinate"``.
        beta: fixed inverse temperature ``β > 0``.
        frequencies: initial ``ω`` of every component (``n`` positive numbers; default all 1), ``"mode"`` only.
        centres: initial ``μ`` (``K`` rows of ``2n`` numbers); default from ``radius``.
        radius: ``≥ 0``; without ``centres``, ``μ_k = radius (cos 2πk/K, sin 2πk/K)`` in ``(Q_1, Q_2)`` (or
            ``(Q_1, P_1)`` when ``n = 1``), zero elsewhere.
        learnable: which of ``"loc"``, ``"scale"``, ``"weights"`` are parameters (the rest are buffers):
            ``True`` (all), ``False`` (none) or an iterable of names.

    Samples and log-densities follow the module's dtype and device. Unconditional: ``context`` must be ``None``.

    >>> base = PhaseSpaceGaussian.oscillator(2, beta=2.0, frequencies=[1.0, 4.0]).double()
    >>> z = base.rsample(3, torch.Generator().manual_seed(0))
    >>> z.shape, base.log_prob(z).shape
    (torch.Size([3, 4]), torch.Size([3]))
    """

    def __init__(
        self,
        n: int,
        components: int = 1,
        *,
        scale: str = "mode",
        beta: float = 1.0,
        frequencies: Iterable[float] | torch.Tensor | None = None,
        centres: Iterable[Iterable[float]] | torch.Tensor | None = None,
        radius: float = 0.0,
        learnable: bool | Iterable[str] = True,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.n = check_positive_int(n, "n", who)
        self.components = check_positive_int(components, "components", who)
        self.scale = check_choice(scale, SCALES, "scale", who)
        self.beta = check_positive_float(beta, "beta", who)
        self.learnable = _learnable(learnable, who)
        dtype = torch.get_default_dtype()
        loc = _centres(centres, radius, self.n, self.components, dtype, who)
        width = self.n if scale == "mode" else 2 * self.n
        log_scale = torch.zeros(self.components, width, dtype=dtype)
        if frequencies is not None:
            if scale != "mode":
                raise ValueError(f"{who}: frequencies are an option of scale='mode'")
            log_scale = _frequencies(frequencies, self.n, dtype, who).log().expand(self.components, width).clone()
        self._register("loc", loc, "loc")
        self._register("log_frequency" if scale == "mode" else "log_scale", log_scale, "scale")
        self._register("logits", torch.zeros(self.components, dtype=dtype), "weights")

    def _register(self, name: str, value: torch.Tensor, group: str) -> None:
        if group in self.learnable:
            setattr(self, name, torch.nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    # ------------------------------------------------------------------ the common kinds
    @classmethod
    def standard(cls, n: int) -> PhaseSpaceGaussian:
        """``N(0, I)``, nothing learned: ``log p(z) = −|z|²/2 − n ln 2π``."""
        return cls(n, learnable=False)

    @classmethod
    def oscillator(
        cls, n: int, beta: float = 1.0, frequencies: Iterable[float] | torch.Tensor | None = None
    ) -> PhaseSpaceGaussian:
        """``e^{−βK}/Z_K``, ``K = Σ_k ω_k (Q_k² + P_k²)/2``, centred, with learned frequencies ``ω``."""
        return cls(n, beta=beta, frequencies=frequencies, learnable={"scale"})

    @classmethod
    def mixture(
        cls,
        n: int,
        components: int,
        beta: float = 1.0,
        centres: Iterable[Iterable[float]] | torch.Tensor | None = None,
        radius: float = 0.0,
        frequencies: Iterable[float] | torch.Tensor | None = None,
    ) -> PhaseSpaceGaussian:
        """``K`` oscillator components with learned centres, frequencies and weights."""
        return cls(n, components, beta=beta, centres=centres, radius=radius, frequencies=frequencies)

    @classmethod
    def diagonal(cls, n: int) -> PhaseSpaceGaussian:
        """``N(μ, diag σ²)`` with learned ``μ`` and per-coordinate ``σ`` (both start at ``0`` and ``1``)."""
        return cls(n, scale="coordinate", learnable={"loc", "scale"})

    def extra_repr(self) -> str:
        learned = ", ".join(sorted(self.learnable)) or "nothing"
        return f"n={self.n}, components={self.components}, scale={self.scale!r}, beta={self.beta}, learns {learned}"

    # ------------------------------------------------------------------ parameters
    @property
    def frequencies(self) -> torch.Tensor:
        """``ω = exp(log_frequency)``, shape ``(K, n)`` (``scale="mode"`` only)."""
        if self.scale != "mode":
            raise AttributeError(f"{type(self).__name__}: frequencies exist for scale='mode' only")
        return self.log_frequency.exp()

    @property
    def weights(self) -> torch.Tensor:
        """The mixture weights ``w = softmax(logits)``, shape ``(K,)``."""
        return self.logits.softmax(0)

    def log_std(self) -> torch.Tensor:
        """``ln σ`` of every component and coordinate, shape ``(K, 2n)``."""
        if self.scale == "mode":
            half = -0.5 * (self.log_frequency + math.log(self.beta))
            return torch.cat([half, half], -1)
        return self.log_scale - 0.5 * math.log(self.beta)

    # ------------------------------------------------------------------ densities
    def component_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``ln N_k(z)`` of every component (without the weights) for ``z`` ``(B, 2n)`` -> ``(B, K)``."""
        check_phase_space(z, self.n, f"{type(self).__name__}.component_log_prob", self.loc)
        log_std = self.log_std()
        standardized = (z[:, None, :] - self.loc) * (-log_std).exp()
        return -0.5 * standardized.pow(2).sum(-1) - log_std.sum(-1) - self.n * math.log(2 * math.pi)

    def _log_prob(self, inputs: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        check_phase_space(inputs, self.n, f"{type(self).__name__}.log_prob", self.loc)
        if self.components == 1:
            return self.component_log_prob(inputs)[:, 0]
        return torch.logsumexp(self.component_log_prob(inputs) + self.logits.log_softmax(0), -1)

    def log_partition(self) -> torch.Tensor:
        """``ln Z_K = Σ_j ln(2π/(β ω_j))`` of the centred single oscillator ``e^{−βK}`` (a scalar tensor)."""
        if self.scale != "mode" or self.components != 1:
            raise ValueError(f"{type(self).__name__}.log_partition: defined for one component with scale='mode'")
        return (2 * math.pi / self.beta * (-self.log_frequency[0]).exp()).log().sum()

    # ------------------------------------------------------------------ draws
    def strata(self, num: int) -> torch.Tensor:
        """The stratified component ``i mod K`` of each of ``num ≥ K`` draws, shape ``(num,)`` (int64)."""
        who = f"{type(self).__name__}.strata"
        check_positive_int(num, "num", who)
        if num < self.components:
            raise ValueError(f"{who}: a stratified batch needs at least K = {self.components} draws, got {num}")
        return torch.arange(num, device=self.loc.device) % self.components

    def strata_weights(self, num: int) -> torch.Tensor:
        """Each stratified draw's weight ``w_k num / num_k`` (``k = i mod K``), shape ``(num,)``.

        ``mean_i(weight_i f(z_i))`` over a stratified draw estimates ``E_p[f]`` without bias, differentiably in
        the logits (``= w_k K`` when ``K`` divides ``num``; all ones when ``K = 1``)."""
        strata = self.strata(num)
        counts = torch.bincount(strata, minlength=self.components).to(self.logits.dtype)
        return (self.weights * num / counts)[strata]

    def draw_components(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` i.i.d. component indices ``k ~ w`` (no gradient), shape ``(num,)`` (int64)."""
        check_positive_int(num, "num", f"{type(self).__name__}.draw_components")
        if self.components == 1:
            return torch.zeros(num, dtype=torch.long, device=self.loc.device)
        weights = self.weights.detach().double().cpu()
        return torch.multinomial(weights, num, replacement=True, generator=generator).to(self.loc.device)

    def rsample(self, num: int, generator: torch.Generator | None = None, *, stratified: bool = False) -> torch.Tensor:
        """``num`` reparametrized draws ``z = μ_k + σ_k ⊙ ε``, ``ε ~ N(0, I)`` from ``generator``; ``(num, 2n)``.

        Differentiable in ``μ`` and ``σ``. The components are i.i.d. draws from the weights (drawn after ``ε``),
        or with ``stratified=True`` the strata ``i mod K`` (weight the draws with :meth:`strata_weights`)."""
        check_positive_int(num, "num", f"{type(self).__name__}.rsample")
        noise = torch.randn(num, 2 * self.n, generator=generator, dtype=self.loc.dtype).to(self.loc.device)
        components = self.strata(num) if stratified else self.draw_components(num, generator)
        return self.loc[components] + noise * self.log_std().exp()[components]

    def _sample(self, num_samples: int, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        with torch.no_grad():
            return self.rsample(num_samples)

    def _mean(self, context: torch.Tensor | None) -> torch.Tensor:
        self._no_context(context)
        return (self.weights[:, None] * self.loc).sum(0).detach()

    def _no_context(self, context: torch.Tensor | None) -> None:
        if context is not None:
            raise ValueError(f"{type(self).__name__}: this distribution is unconditional; context must be None")


def _learnable(value: bool | Iterable[str], who: str) -> frozenset[str]:
    if value is True:
        return frozenset(LEARNABLE)
    if value is False:
        return frozenset()
    if isinstance(value, str):
        raise TypeError(f"{who}: learnable must be True, False or a collection of {LEARNABLE}, got {value!r}")
    names = frozenset(value)
    if not names <= set(LEARNABLE):
        raise ValueError(f"{who}: learnable names must be among {LEARNABLE}, got {sorted(names)}")
    return names


def _frequencies(values: object, n: int, dtype: torch.dtype, who: str) -> torch.Tensor:
    try:
        frequencies = torch.as_tensor(values, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{who}: frequencies must be {n} positive numbers") from error
    if frequencies.shape != (n,) or not bool(frequencies.isfinite().all()) or not bool((frequencies > 0).all()):
        raise ValueError(f"{who}: expected {n} positive finite frequencies, got {frequencies}")
    return frequencies


def _centres(centres: object, radius: object, n: int, components: int, dtype: torch.dtype, who: str) -> torch.Tensor:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius < 0:
        raise ValueError(f"{who}: expected a finite radius >= 0, got {radius!r}")
    if centres is None:
        angle = 2 * math.pi * torch.arange(components, dtype=torch.float64) / components
        loc = torch.zeros(components, 2 * n, dtype=torch.float64)
        second = 1 if n >= 2 else n
        loc[:, 0], loc[:, second] = radius * angle.cos(), radius * angle.sin()
        return loc.to(dtype)
    if radius:
        raise ValueError(f"{who}: give either centres or a radius, not both")
    try:
        loc = torch.as_tensor(centres, dtype=dtype).clone()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{who}: centres must be {components} rows of {2 * n} numbers") from error
    if loc.shape != (components, 2 * n) or not bool(loc.isfinite().all()):
        raise ValueError(f"{who}: expected finite centres of shape ({components}, {2 * n}), got {tuple(loc.shape)}")
    return loc
