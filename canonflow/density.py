"""Phase-space density estimation and variational free energies with canonical flows.

A canonical flow ``T`` (data ``x`` -> latent ``z``) has unit Jacobian, so the model density is the base density
pulled back, ``log q_θ(x) = log p_base(T(x))``: exact likelihoods with no log-determinant. Three uses:

**Maximum likelihood** (:func:`fit_density`) on phase-space data ``x = (q, p)`` of shape ``(B, 2n)``. For
configuration-only data ``q`` of shape ``(B, n)`` each point is augmented with independent momenta
``p ~ N(0, I)`` (fresh ones every time it is seen). The model's ``q``-marginal is
``q_θ(q) = ∫ q_θ(q, p) dp = E_{p~N}[q_θ(q, p) / N(p)]``, so with ``NLL_gauss(p) = |p|²/2 + (n/2) ln 2π``

``E_{p~N}[NLL(q, p) − NLL_gauss(p)] = NLL(q) + KL(N(0, I) ‖ q_θ(p | q)) ≥ NLL(q)``  (Jensen),

with equality exactly when the model's conditional ``q_θ(p | q)`` is ``N(0, I)``. Minimizing the left side
therefore fits the ``q``-marginal and pushes the conditional towards the augmentation distribution (the
"augmented normalizing flow" objective). :func:`nll` reports this corrected value (an upper bound on the
``q``-NLL, equal to it in expectation when the conditional is exact) or, with ``importance_weighted=True``,
the tighter ``−log (1/K) Σ_k q_θ(q, p_k)/N(p_k)`` that converges to ``NLL(q)`` as ``K → ∞``.

**Variational free energy** (:func:`fit_variational`) of a Boltzmann distribution ``e^{−βH}/Z``: minimize the
reverse KL, i.e. ``F_var = E_{x~q_θ}[log q_θ(x) + βH(x)]/β = F + KL(q_θ ‖ e^{−βH}/Z)/β ≥ F`` with
``F = −(1/β) ln Z``. :func:`free_energy` estimates ``F_var`` and the importance-sampled
``F_IS = −(1/β) ln((1/N) Σ_i w_i)``, ``log w = −βH − log q_θ``, with standard errors and effective sample size.

**Latent analysis**: with an :class:`~canonflow.distributions.OscillatorBase` the model is the Boltzmann
distribution of ``K∘T`` with ``K = Σ_k ω_k (Q_k² + P_k²)/2``; :func:`latent_frequencies` reads off ``ω_k``, and
:func:`latent_dependence` measures how user observables depend on each latent coordinate.

All losses and estimates are in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from nflows.distributions import Distribution
from nflows.flows import Flow
from nflows.transforms import CompositeTransform, Transform

from canonflow.builders import canonical_flow
from canonflow.checkpoint import register_model
from canonflow.distributed import DistributedContext, check_global_batch, shard
from canonflow.distributions import OscillatorBase, OscillatorMixture, PhaseSpaceNormal
from canonflow.training import TrainConfig, TrainResult, train
from canonflow.transforms import LinearSymplectic, MatrixExpSymplectic
from canonflow.validation import check_non_negative_int, check_positive_int

__all__ = [
    "PhaseSpaceFlow",
    "DensityFit",
    "FreeEnergyEstimate",
    "augment_momenta",
    "gaussian_nll",
    "nll",
    "fit_density",
    "fit_variational",
    "variational_loss",
    "sample_with_log_prob",
    "log_importance_weights",
    "free_energy",
    "importance_expectation",
    "latent_frequencies",
    "latent_dependence",
]

Energy = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------- the model
@register_model
class PhaseSpaceFlow(Flow):
    """A canonical flow with a phase-space base, as an nflows ``Flow`` that ``canonflow.load`` can rebuild.

    Data -> latent (``forward``): ``canonical_flow(n, blocks, hidden, householder, full_linear, zero_center,
    activation)`` (omitted when ``blocks == 0``), then ``linear_layers`` global linear symplectic maps ``linear``
    (``"matrix_exp"``: ``MatrixExpSymplectic``; ``"nak"``: ``LinearSymplectic(n, householder, full_linear)``;
    ``"none"``), into the
    base ``"oscillator"`` (:class:`OscillatorBase` at ``beta``), ``"normal"`` (:class:`PhaseSpaceNormal`) or
    ``"mixture"`` (:class:`OscillatorMixture` of ``components`` oscillators at ``beta``, initialized from
    ``centres``, ``radius`` and ``frequencies``, which only the mixture takes and only its config records).
    ``log_prob`` is exact (``logabsdet ≡ 0``). A product of several linear maps represents nothing new but
    preconditions gradient descent (an over-parametrized product takes larger steps along its large singular
    directions), which speeds up ill-conditioned targets such as the harmonic chain.
    """

    def __init__(
        self,
        n: int,
        blocks: int = 4,
        hidden: int = 64,
        linear: str = "matrix_exp",
        linear_layers: int = 1,
        householder: int | None = None,
        full_linear: bool = False,
        zero_center: bool = False,
        activation: str = "tanh",
        base: str = "oscillator",
        beta: float = 1.0,
        components: int = 8,
        centres: list | None = None,
        radius: float = 0.0,
        frequencies: list | None = None,
    ) -> None:
        who = "PhaseSpaceFlow"
        check_positive_int(n, "n", who)
        check_non_negative_int(blocks, "blocks", who)
        if linear not in ("matrix_exp", "nak", "none"):
            raise ValueError(f"{who}: linear must be 'matrix_exp', 'nak' or 'none', got {linear!r}")
        if base not in ("oscillator", "normal", "mixture"):
            raise ValueError(f"{who}: base must be 'oscillator', 'normal' or 'mixture', got {base!r}")
        mixture = {"components": components, "centres": centres, "radius": radius, "frequencies": frequencies}
        if base != "mixture" and mixture != {"components": 8, "centres": None, "radius": 0.0, "frequencies": None}:
            raise ValueError(f"{who}: components, centres, radius and frequencies are options of base='mixture'")
        layers: list[Transform] = []
        if blocks:
            layers.append(canonical_flow(n, blocks, hidden, householder, full_linear, zero_center, activation))
        check_positive_int(linear_layers, "linear_layers", who)
        for _ in range(linear_layers if linear != "none" else 0):
            if linear == "matrix_exp":
                layers.append(MatrixExpSymplectic(n))
            else:
                layers.append(LinearSymplectic(n, householder=householder, full=full_linear))
        if not layers:
            raise ValueError(f"{who}: blocks=0 and linear='none' leave no layers")
        if base == "mixture":
            if isinstance(centres, torch.Tensor) or isinstance(frequencies, torch.Tensor):
                raise TypeError(f"{who}: give centres and frequencies as plain (nested) lists, for the config")
            distribution = OscillatorMixture(n, components, beta, centres, radius, frequencies)
        else:
            distribution = OscillatorBase(n, beta) if base == "oscillator" else PhaseSpaceNormal(n)
        super().__init__(CompositeTransform(layers), distribution)
        self.n = n
        self._config = {
            "n": n,
            "blocks": blocks,
            "hidden": hidden,
            "linear": linear,
            "linear_layers": linear_layers,
            "householder": householder,
            "full_linear": full_linear,
            "zero_center": zero_center,
            "activation": activation,
            "base": base,
            "beta": float(beta),
        }
        if base == "mixture":
            self._config.update(
                components=components,
                centres=None if centres is None else [[float(v) for v in row] for row in centres],
                radius=float(radius),
                frequencies=None if frequencies is None else [float(v) for v in frequencies],
            )

    def config(self) -> dict[str, Any]:
        """The constructor arguments (for ``canonflow.checkpoint.save_model``)."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PhaseSpaceFlow:
        """Rebuild from :meth:`config`."""
        return cls(**config)


# ---------------------------------------------------------------------------------------------- helpers
def _reference(flow: torch.nn.Module) -> torch.Tensor:
    for tensor in flow.parameters():
        return tensor
    for tensor in flow.buffers():
        if tensor.is_floating_point():
            return tensor
    return torch.zeros(())


def _base(flow: Flow, who: str) -> Distribution:
    if not isinstance(flow, Flow):
        raise TypeError(f"{who}: expected an nflows Flow, got {type(flow).__name__}")
    base = flow._distribution
    if not isinstance(getattr(base, "n", None), int):
        raise TypeError(
            f"{who}: the flow's base distribution must be a phase-space distribution with an integer n "
            f"(PhaseSpaceNormal, OscillatorBase or OscillatorMixture), got {type(base).__name__}"
        )
    return base


def _check_beta(beta: object, who: str) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"{who}: expected a finite inverse temperature beta > 0, got {beta!r}")
    return float(beta)


def _as_data(data: object, n: int, who: str, reference: torch.Tensor, name: str = "data") -> torch.Tensor:
    """``data`` as a finite ``(B, n)`` or ``(B, 2n)`` tensor in ``reference``'s dtype and device."""
    try:
        tensor = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{who}: {name} must be array-like, got {type(data).__name__}") from error
    if tensor.dim() != 2:
        raise ValueError(f"{who}: expected {name} of shape (B, {2 * n}) or (B, {n}), got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError(f"{who}: {name} is empty (0 samples)")
    if tensor.shape[1] not in (n, 2 * n):
        raise ValueError(
            f"{who}: expected {name} of width 2n = {2 * n} (phase space) or n = {n} (configurations), "
            f"got width {tensor.shape[1]}"
        )
    tensor = tensor.to(dtype=reference.dtype, device=reference.device)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{who}: {name} contains NaN or Inf")
    return tensor


def _check_energy(value: torch.Tensor, batch: int, who: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.shape != (batch,):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{who}: the energy must map (B, 2n) to (B,), got {shape}")
    return value


def augment_momenta(q: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B, n) -> (B, 2n)``: append independent momenta ``p ~ N(0, I)`` drawn with ``generator``."""
    p = torch.randn(q.shape, generator=generator, dtype=q.dtype).to(q.device)
    return torch.cat([q, p], dim=-1)


def gaussian_nll(p: torch.Tensor) -> torch.Tensor:
    """``NLL_gauss(p) = |p|²/2 + (n/2) ln 2π`` of the augmentation distribution ``N(0, I)``; ``(B, n) -> (B,)``."""
    return 0.5 * p.pow(2).sum(-1) + 0.5 * p.shape[-1] * math.log(2 * math.pi)


def nll(
    flow: Flow,
    data: torch.Tensor,
    *,
    num_momenta: int = 1,
    importance_weighted: bool = False,
    generator: torch.Generator | None = None,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Per-sample negative log-likelihood in nats, shape ``(B,)``, computed without a graph.

    Phase-space ``data`` ``(B, 2n)``: the exact ``−log q_θ(x)``. Configurations ``(B, n)``: with ``K =
    num_momenta`` draws ``p_k ~ N(0, I)`` and ``log r_k = log q_θ(q, p_k) + NLL_gauss(p_k)``, the corrected
    ``−(1/K) Σ_k log r_k`` (default; ``≥ NLL(q)`` in expectation, equal when ``q_θ(p|q) = N(0, I)``), or with
    ``importance_weighted=True`` ``−log (1/K) Σ_k r_k`` (a stochastic upper bound that tightens to ``NLL(q)``).
    """
    who = "nll"
    n = _base(flow, who).n
    check_positive_int(num_momenta, "num_momenta", who)
    check_positive_int(batch_size, "batch_size", who)
    data = _as_data(data, n, who, _reference(flow))
    out = []
    with torch.no_grad():
        for chunk in data.split(batch_size):
            if chunk.shape[1] == 2 * n:
                out.append(-flow.log_prob(chunk))
                continue
            log_r = []
            per_pass = max(1, batch_size // len(chunk))
            for start in range(0, num_momenta, per_pass):
                draws = min(per_pass, num_momenta - start)
                x = augment_momenta(chunk.repeat(draws, 1), generator)
                log_r.append((flow.log_prob(x) + gaussian_nll(x[:, n:])).view(draws, len(chunk)))
            log_r = torch.cat(log_r)
            if importance_weighted:
                out.append(math.log(num_momenta) - torch.logsumexp(log_r, 0))
            else:
                out.append(-log_r.mean(0))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------- fitting
@dataclass
class DensityFit:
    """What :func:`fit_density` did: the training record, the final validation NLL (nats per sample, of ``q``
    alone for configuration data, momentum-corrected as in :func:`nll`) and whether momenta were augmented."""

    train: TrainResult
    validation_nll: float
    augmented: bool
    num_train: int
    num_validation: int


def fit_density(
    flow: Flow,
    data: torch.Tensor,
    *,
    validation_data: torch.Tensor | None = None,
    validation_fraction: float = 0.1,
    batch_size: int = 256,
    config: TrainConfig | None = None,
    distributed: DistributedContext | None = None,
) -> DensityFit:
    """Fit ``flow`` to ``data`` by maximum likelihood with :func:`canonflow.training.train`.

    ``data``: phase-space points ``(B, 2n)`` or configurations ``(B, n)`` (then augmented with fresh momenta
    ``p ~ N(0, I)`` per minibatch and the loss is ``NLL(q, p) − NLL_gauss(p)``, see the module docstring).
    Validation uses ``validation_data`` or else a random ``validation_fraction`` of ``data`` (``0``: none);
    its mean NLL (with momenta drawn from a fixed seed, so validations are comparable) drives early stopping
    and the best weights are kept. ``config`` defaults to ``TrainConfig()``. Data is cast to the flow's dtype.

    With a ``distributed`` context (``canonflow.distributed``) every rank holds all of ``data``, draws the same
    global minibatch of ``min(batch_size, len(data))`` points (and, for configurations, their momenta) from the
    shared training generator and keeps its contiguous shard; DDP averages the shard-mean gradients, so N ranks
    follow the trajectory of one process with the same global batch (which must be divisible by N). Validation
    is computed on every rank from the same data and seed, hence identical.
    """
    who = "fit_density"
    n = _base(flow, who).n
    config = TrainConfig(description=who) if config is None else config
    check_positive_int(batch_size, "batch_size", who)
    reference = _reference(flow)
    data = _as_data(data, n, who, reference)
    if validation_data is not None:
        validation_data = _as_data(validation_data, n, who, reference, "validation_data")
        if validation_data.shape[1] != data.shape[1]:
            raise ValueError(f"{who}: validation_data has width {validation_data.shape[1]}, data {data.shape[1]}")
    elif validation_fraction:
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"{who}: expected 0 <= validation_fraction < 1, got {validation_fraction}")
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + 1))
        cut = int(round(validation_fraction * len(data)))
        if cut == 0 or cut == len(data):
            raise ValueError(f"{who}: {len(data)} samples are too few to split off a validation fraction")
        validation_data, data = data[order[:cut].to(data.device)], data[order[cut:].to(data.device)]
    augmented = data.shape[1] == n
    batch = min(batch_size, len(data))
    check_global_batch(batch, distributed, who)

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, len(data), (batch,), generator=generator)
        x = data[index.to(data.device)]
        if augmented:
            x = augment_momenta(x, generator)
        if distributed is not None:
            x = shard(x)
        if not augmented:
            return -flow.log_prob(x).mean()
        return (-flow.log_prob(x) - gaussian_nll(x[:, n:])).mean()

    def validate() -> float:
        generator = torch.Generator().manual_seed(config.seed + 2)
        return float(nll(flow, validation_data, generator=generator).mean())

    result = train(
        flow, loss_fn, config, validate=validate if validation_data is not None else None, distributed=distributed
    )
    value = result.best_validation if validation_data is not None else math.nan
    return DensityFit(result, value, augmented, len(data), 0 if validation_data is None else len(validation_data))


def sample_with_log_prob(
    flow: Flow, num: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparametrized samples ``x ~ q_θ`` of shape ``(num, 2n)`` and their ``log q_θ(x)``, shape ``(num,)``.

    The noise is drawn with ``generator`` and mapped by the base's ``from_noise`` and the flow's inverse, so
    the result is differentiable in the parameters (the reverse-KL gradient). With a stratified base
    (:class:`OscillatorMixture`) the components are drawn i.i.d. from the mixture weights with ``generator``
    (so the samples are i.i.d. draws of ``q_θ``, differentiable in the components' centres and frequencies but
    not in the weights; :func:`variational_loss` uses the stratified, weighted estimator instead).
    """
    who = "sample_with_log_prob"
    base = _base(flow, who)
    if not hasattr(base, "from_noise"):
        raise TypeError(f"{who}: the base distribution {type(base).__name__} has no reparametrized from_noise")
    check_positive_int(num, "num", who)
    reference = _reference(flow)
    noise = torch.randn(num, 2 * base.n, generator=generator, dtype=reference.dtype).to(reference.device)
    components = base.draw_components(num, generator) if _stratified(base) else None
    return _push_noise(flow, base, noise, components)


def _stratified(base: Distribution) -> bool:
    """Whether ``base`` samples by strata with weights (``noise_weights``), like :class:`OscillatorMixture`."""
    return hasattr(base, "noise_weights")


def _push_noise(
    flow: Flow, base: Distribution, noise: torch.Tensor, components: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard normal ``noise (B, 2n)`` -> model samples ``x = T⁻¹(from_noise(noise))`` and ``log q_θ(x)``.

    ``components`` (stratified bases only) picks each sample's component; ``None`` means the base's strata."""
    z = base.from_noise(noise) if components is None else base.from_noise(noise, components)
    log_base = base.log_prob(z)
    x, logabsdet = flow._transform.inverse(z)
    return x, log_base - logabsdet


class _LogDensity(torch.nn.Module):
    """``x -> log q_θ(x)`` of ``flow`` as a ``forward`` (nflows distributions refuse one), so that
    ``torch.func.functional_call`` can evaluate it with substituted parameters."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(x)


def variational_loss(
    flow: Flow, energy: Energy, noise: torch.Tensor, beta: float = 1.0, *, gradient: str = "path"
) -> torch.Tensor:
    """The minibatch variational free energy ``mean(log q_θ(x) + βH(x))/β`` of ``x = T⁻¹(from_noise(noise))``,
    differentiable in the flow's parameters θ with the reverse-KL gradient estimator ``gradient``.

    With ``x = x(θ, ε)`` the reparametrized sample of standard normal ``ε`` (``noise``, shape ``(B, 2n)``),

    ``∇_θ F_var = E_ε[ ∇_x(log q_θ(x) + βH(x)) · ∂x/∂θ ]/β + E_ε[ ∂_θ log q_θ(x)|_x fixed ]/β``,

    and the last (score) term is ``E_q[∂_θ log q_θ] = 0``. ``"total"`` differentiates the per-sample loss
    completely, so each sample carries the zero-mean score term as noise. ``"path"`` (the path-derivative or
    "sticking the landing" estimator of Roeder, Wu & Duvenaud 2017) drops it by evaluating ``log q`` at the
    sample with the parameters detached, ``log q_{stop(θ)}(x(θ, ε))`` (a second, forward pass of the flow).
    Both are unbiased for the same gradient. When ``q_θ = e^{−βH}/Z`` the integrand
    ``log q_θ(x) + βH(x) = −ln Z`` is constant in ``x``, so every sample's path gradient is exactly zero: its
    variance vanishes at the optimum, whereas the total gradient keeps the variance of the score term. The loss
    *value* is the same for both.

    With a stratified base (:class:`OscillatorMixture`, ``K`` components, ``B ≥ K``) sample ``i`` is drawn from
    component ``k = i mod K`` and the loss is the weighted mean ``Σ_k w_k mean_{i∈k}[log q_θ(x_i) + βH(x_i)]/β``,
    an unbiased estimate of ``F_var`` whose gradient in the mixture logits flows only through the weights ``w_k``
    (``Σ_k ∂w_k E_k[f]``); the rest of the exact gradient, ``E_q[∂ log q_θ] = 0``, is the score term that
    ``"path"`` drops.
    """
    who = "variational_loss"
    _check_gradient(gradient, who)
    base = _base(flow, who)
    if not hasattr(base, "from_noise"):
        raise TypeError(f"{who}: the base distribution {type(base).__name__} has no reparametrized from_noise")
    return _variational_loss(flow, base, energy, noise, _check_beta(beta, who), gradient, who)


def _check_gradient(gradient: object, who: str) -> None:
    if gradient not in ("path", "total"):
        raise ValueError(f"{who}: gradient must be 'path' or 'total', got {gradient!r}")


def _variational_loss(
    flow: Flow,
    base: Distribution,
    energy: Energy,
    noise: torch.Tensor,
    beta: float,
    gradient: str,
    who: str,
    strata: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """:func:`variational_loss` with checked arguments; ``who`` names the caller in errors. For a stratified base
    ``strata`` = (components, weights) of the rows of ``noise`` (default: the base's strata of ``len(noise)``)."""
    weights = None
    if _stratified(base):
        if strata is None:
            strata = (base.strata(len(noise)), base.noise_weights(len(noise)))
        components, weights = strata
        x, log_q = _push_noise(flow, base, noise, components)
    else:
        x, log_q = _push_noise(flow, base, noise)
    if gradient == "path":
        detached = {f"flow.{name}": parameter.detach() for name, parameter in flow.named_parameters()}
        log_q = torch.func.functional_call(_LogDensity(flow), detached, (x,))
    values = log_q + beta * _check_energy(energy(x), len(x), who)
    return (values if weights is None else weights * values).mean() / beta


def fit_variational(
    flow: Flow,
    energy: Energy,
    beta: float = 1.0,
    *,
    batch_size: int = 256,
    config: TrainConfig | None = None,
    gradient: str = "path",
    distributed: DistributedContext | None = None,
) -> TrainResult:
    """Fit ``flow`` to ``e^{−βH}/Z`` by minimizing the reverse KL with :func:`canonflow.training.train`.

    The loss is the Monte Carlo variational free energy ``F_var = mean(log q_θ(x) + β H(x))/β`` over
    ``batch_size`` reparametrized samples ``x ~ q_θ`` per step (:func:`sample_with_log_prob`); since
    ``F_var − F = KL(q_θ ‖ e^{−βH}/Z)/β``, the losses are free energies in nats. ``energy`` maps
    ``(B, 2n) -> (B,)`` (e.g. a :class:`~canonflow.systems.HamiltonianSystem`). The base must support
    ``from_noise`` (:class:`OscillatorBase`, :class:`PhaseSpaceNormal`, :class:`OscillatorMixture`: the latter by
    the stratified, weighted estimator of :func:`variational_loss`, which needs ``batch_size ≥ K``, or per rank
    the global batch). ``gradient`` picks the estimator of
    :func:`variational_loss`: ``"path"`` (default; zero variance at the optimum, at the price of one more forward
    pass: 1.2–1.6× the step time in the free-energy benchmarks) or ``"total"``.

    With a ``distributed`` context (``canonflow.distributed``) ``batch_size`` is the global batch ``G``: every
    rank draws the same ``G × 2n`` standard normal noise from the shared training generator and pushes only its
    contiguous shard of ``G/N`` rows through the flow, so N ranks compute exactly the samples (and, after DDP's
    gradient averaging, the gradient) of one process with batch ``G``. ``G`` must be divisible by N.
    """
    who = "fit_variational"
    base = _base(flow, who)
    beta = _check_beta(beta, who)
    check_positive_int(batch_size, "batch_size", who)
    check_global_batch(batch_size, distributed, who)
    if not callable(energy):
        raise TypeError(f"{who}: energy must be callable (B, 2n) -> (B,), got {type(energy).__name__}")
    if not hasattr(base, "from_noise"):
        raise TypeError(f"{who}: the base distribution {type(base).__name__} has no reparametrized from_noise")
    _check_gradient(gradient, who)
    config = TrainConfig(description=who) if config is None else config
    reference = _reference(flow)

    if _stratified(base):
        base.strata(batch_size)  # the global batch must hold every component: fail before training

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(batch_size, 2 * base.n, generator=generator, dtype=reference.dtype)
        strata = (base.strata(batch_size), base.noise_weights(batch_size)) if _stratified(base) else None
        if distributed is not None:
            noise = shard(noise)
            strata = None if strata is None else (shard(strata[0]), shard(strata[1]))
        return _variational_loss(flow, base, energy, noise.to(reference.device), beta, gradient, who, strata)

    return train(flow, loss_fn, config, distributed=distributed)


# ---------------------------------------------------------------------------------------------- estimators
@dataclass
class FreeEnergyEstimate:
    """Free-energy estimates in nats from ``num_samples`` draws of the model at inverse temperature ``beta``.

    ``variational`` = ``mean(log q + βH)/β`` (an upper bound on ``F`` in expectation), ``importance`` =
    ``−(1/β) ln mean(w)``, ``w = e^{−βH}/q`` (consistent; biased upwards by ``≈ Var(w)/(2N mean(w)²β)``),
    each with a standard error; ``ess = (Σw)²/Σw²`` and ``ess_fraction = ess/num_samples``.
    """

    variational: float
    variational_stderr: float
    importance: float
    importance_stderr: float
    ess: float
    ess_fraction: float
    num_samples: int
    beta: float

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for JSON)."""
        return dict(self.__dict__)


def log_importance_weights(
    flow: Flow,
    energy: Energy,
    beta: float = 1.0,
    num: int = 100_000,
    generator: torch.Generator | None = None,
    batch_size: int = 10_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``x ~ q_θ`` ``(num, 2n)`` and their log weights ``log w = −βH(x) − log q_θ(x)`` ``(num,)``.

    ``E_q[w f] = Z E_p[f]``, so ``w`` re-weights model samples to the Boltzmann distribution (see
    :func:`importance_expectation`). The samples are i.i.d. (:func:`sample_with_log_prob`; a mixture base draws
    the components from its weights). No graph is kept.
    """
    who = "log_importance_weights"
    _base(flow, who)
    beta = _check_beta(beta, who)
    check_positive_int(num, "num", who)
    check_positive_int(batch_size, "batch_size", who)
    xs, log_ws = [], []
    with torch.no_grad():
        for start in range(0, num, batch_size):
            size = min(batch_size, num - start)
            x, log_q = sample_with_log_prob(flow, size, generator)
            log_ws.append(-beta * _check_energy(energy(x), size, who) - log_q)
            xs.append(x)
    return torch.cat(xs), torch.cat(log_ws)


def free_energy(
    flow: Flow,
    energy: Energy,
    beta: float = 1.0,
    num_samples: int = 100_000,
    generator: torch.Generator | None = None,
    batch_size: int = 10_000,
) -> FreeEnergyEstimate:
    """Variational and importance-sampled free energies of ``e^{−βH}`` from ``num_samples`` model samples.

    With ``log w_i = −βH(x_i) − log q_θ(x_i)``: ``F_var = −mean(log w)/β`` with standard error
    ``std(log w)/(β√N)``; ``F_IS = −(1/β) ln((1/N) Σ w_i)`` with the delta-method standard error
    ``std(w)/(β √N mean(w))``; ``ESS = (Σ w)²/Σ w²``. Computed in float64 with max-shifted weights.
    """
    who = "free_energy"
    beta = _check_beta(beta, who)
    _, log_w = log_importance_weights(flow, energy, beta, num_samples, generator, batch_size)
    log_w = log_w.double()
    count = log_w.numel()
    if not torch.isfinite(log_w).all():
        raise ValueError(f"{who}: non-finite log weights (the energy or the model produced NaN/Inf)")
    shifted = (log_w - log_w.max()).exp()
    mean_w = shifted.mean()
    log_mean = float(mean_w.log() + log_w.max())
    relative_se = float(shifted.std() / mean_w) / math.sqrt(count) if count > 1 else math.inf
    ess = float(shifted.sum() ** 2 / shifted.pow(2).sum())
    return FreeEnergyEstimate(
        variational=float(-log_w.mean()) / beta,
        variational_stderr=(float(log_w.std()) / math.sqrt(count) if count > 1 else math.inf) / beta,
        importance=-log_mean / beta,
        importance_stderr=relative_se / beta,
        ess=ess,
        ess_fraction=ess / count,
        num_samples=count,
        beta=beta,
    )


def importance_expectation(values: torch.Tensor, log_weights: torch.Tensor) -> tuple[float, float, float]:
    """Self-normalized importance estimate of ``E_p[f]``: ``(Σ w_i f_i / Σ w_i, stderr, ESS)``.

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


# ---------------------------------------------------------------------------------------------- latent analysis
def latent_frequencies(flow: Flow) -> torch.Tensor:
    """The learned latent frequencies ``ω_k`` of an :class:`OscillatorBase`, sorted ascending, shape ``(n,)``."""
    base = _base(flow, "latent_frequencies")
    if isinstance(base, OscillatorMixture):
        raise TypeError(
            "latent_frequencies: defined for a single OscillatorBase; the flow has an OscillatorMixture, whose "
            "components each have their own frequencies (read base.frequencies, shape (K, n))"
        )
    if not isinstance(base, OscillatorBase):
        raise TypeError(f"latent_frequencies: needs an OscillatorBase, the flow has a {type(base).__name__}")
    return base.frequencies.detach().sort().values


def _ranks_to_bins(values: torch.Tensor, bins: int) -> torch.Tensor:
    ranks = values.argsort(0).argsort(0)
    return (ranks * bins // values.shape[0]).clamp(max=bins - 1)


def latent_dependence(
    flow: Flow,
    x: torch.Tensor,
    observables: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    bins: int = 16,
) -> dict[str, dict[str, torch.Tensor]]:
    """How each observable depends on each latent coordinate ``z = T(x)`` (``x``: phase-space ``(B, 2n)``).

    For every observable ``f: (B, 2n) -> (B,)`` (evaluated on ``x``) returns ``{"correlation": ρ,
    "mutual_information": I}``, each of shape ``(2n,)`` over the latent coordinates ``[Q_1..Q_n, P_1..P_n]``:
    the Pearson correlation and a plug-in mutual information in nats on an equal-frequency ``bins × bins``
    grid, ``I = Σ_ij p_ij ln(p_ij/(p_i p_j))`` (positively biased by about ``(bins−1)²/(2B)``).
    """
    who = "latent_dependence"
    n = _base(flow, who).n
    check_positive_int(bins, "bins", who)
    x = _as_data(x, n, who, _reference(flow), "x")
    if x.shape[1] != 2 * n or x.shape[0] < 2:
        raise ValueError(f"{who}: expected phase-space x of shape (B >= 2, {2 * n}), got {tuple(x.shape)}")
    with torch.no_grad():
        z = flow.transform_to_noise(x).double()
    z_bins = _ranks_to_bins(z, bins)
    z_std = (z - z.mean(0)) / z.std(0).clamp_min(1e-300)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, observable in observables.items():
        with torch.no_grad():
            f = observable(x)
        if not isinstance(f, torch.Tensor) or f.shape != (x.shape[0],):
            raise ValueError(f"{who}: observable {name!r} must map (B, 2n) to (B,)")
        f = f.double()
        f_std = (f - f.mean()) / f.std().clamp_min(1e-300)
        correlation = (z_std * f_std[:, None]).sum(0) / (x.shape[0] - 1)
        f_bins = _ranks_to_bins(f[:, None], bins)[:, 0]
        joint = torch.zeros(2 * n, bins * bins, dtype=torch.float64)
        joint.scatter_add_(1, (z_bins * bins + f_bins[:, None]).T, torch.ones(2 * n, x.shape[0], dtype=torch.float64))
        joint = joint.view(2 * n, bins, bins) / x.shape[0]
        outer = joint.sum(2, keepdim=True) * joint.sum(1, keepdim=True)
        terms = torch.where(joint > 0, joint * (joint / outer.clamp_min(1e-300)).log(), torch.zeros_like(joint))
        out[name] = {"correlation": correlation, "mutual_information": terms.sum((1, 2))}
    return out
