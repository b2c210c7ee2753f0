"""``CanonicalFlow``: a canonical transform and a phase-space base, the one flow every application uses.

``forward`` maps data ``x`` to latent ``z = T(x)``, as in nflows. Because ``T`` is symplectic,
``log|det ∂T/∂x| = 0`` and the model density is the base density pulled back, ``log q(x) = log p(T(x))``: exact
likelihoods with no Jacobian. The base (:class:`~canonflow.distributions.PhaseSpaceGaussian`) carries the
normalization and the scales, which a volume-preserving map cannot change.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from nflows.flows import Flow
from nflows.transforms import CompositeTransform, Transform

from canonflow.builders import canonical_flow
from canonflow.checkpoint import CheckpointError, register_migration, register_model, save_model
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.transforms import LinearSymplectic, MatrixExpSymplectic
from canonflow.validation import check_choice, check_non_negative_int, check_positive_int

__all__ = ["CanonicalFlow", "check_flow", "BASES", "LINEAR"]

BASES = ("oscillator", "normal", "mixture", "diagonal")
LINEAR = ("matrix_exp", "nak", "none")


@register_model
class CanonicalFlow(Flow):
    """``q(x) = p(T(x))``: a canonical ``transform`` ``T`` (data -> latent) and a :class:`PhaseSpaceGaussian` base.

    Args:
        transform: an nflows transform on ``(B, 2n)``: any canonflow layer or stack (``logabsdet ≡ 0``); other
            nflows transforms work too (their log-determinant enters ``log q``), e.g. to compare with a peer.
        base: the base distribution on ``ℝ²ⁿ``.

    ``to_latent``/``to_data`` are ``T`` and ``T⁻¹`` on ``(B, 2n)``; ``log_prob(x)`` is exact;
    ``sample_and_log_prob(num)`` draws ``x = T⁻¹(z)``, ``z ~ p`` with ``log q(x) = log p(z)`` in one pass
    (reparametrized: differentiable in every parameter when grad mode is on). Build one with
    :meth:`build` to be able to :meth:`save` it and reload it with ``canonflow.load``.

    >>> import torch
    >>> from canonflow import CanonicalFlow
    >>> flow = CanonicalFlow.build(2, blocks=2, hidden=16, base="oscillator").double()
    >>> x, log_q = flow.sample_and_log_prob(5, torch.Generator().manual_seed(0))
    >>> x.shape, bool(torch.allclose(flow.log_prob(x), log_q))
    (torch.Size([5, 4]), True)
    """

    def __init__(self, transform: Transform, base: PhaseSpaceGaussian) -> None:
        who = type(self).__name__
        if not isinstance(transform, Transform):
            raise TypeError(f"{who}: expected transform to be an nflows Transform, got {type(transform).__name__}")
        if not isinstance(base, PhaseSpaceGaussian):
            raise TypeError(f"{who}: expected base to be a PhaseSpaceGaussian, got {type(base).__name__}")
        super().__init__(transform, base)
        self.n = base.n
        self._config: dict[str, Any] | None = None

    @property
    def transform(self) -> Transform:
        """The canonical transform ``T`` (data -> latent)."""
        return self._transform

    @property
    def base(self) -> PhaseSpaceGaussian:
        """The base distribution ``p`` on the latent space."""
        return self._distribution

    # ------------------------------------------------------------------ maps and densities
    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Phase-space points ``x`` -> latent ``z = T(x)``, ``(B, 2n) -> (B, 2n)``."""
        return self._transform(x)[0]

    def to_data(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``z`` -> phase-space points ``x = T⁻¹(z)``, ``(B, 2n) -> (B, 2n)``."""
        return self._transform.inverse(z)[0]

    def sample_and_log_prob(
        self, num: int, generator: torch.Generator | None = None, *, stratified: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` draws ``x ~ q`` ``(num, 2n)`` and their exact ``log q(x)`` ``(num,)``, in one pass.

        ``z`` is the base's reparametrized draw (``PhaseSpaceGaussian.rsample``, with ``stratified`` components
        for a mixture), ``x = T⁻¹(z)`` and ``log q(x) = log p(z) − logabsdet`` (``= log p(z)`` for canonical layers)."""
        check_positive_int(num, "num", f"{type(self).__name__}.sample_and_log_prob")
        return self.push(self.base.rsample(num, generator, stratified=stratified))

    def push(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent draws ``z`` ``(B, 2n)`` -> data ``x = T⁻¹(z)`` and ``log q(x) = log p(z)``, each differentiable."""
        x, logabsdet = self._transform.inverse(z)
        return x, self.base.log_prob(z) - logabsdet

    # ------------------------------------------------------------------ persistence
    @classmethod
    def build(
        cls,
        n: int,
        blocks: int = 4,
        hidden: int = 64,
        *,
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
    ) -> CanonicalFlow:
        """The standard saveable flow: ``canonical_flow(n, blocks, hidden, householder, full_linear, zero_center,
        activation)`` (none when ``blocks == 0``), then ``linear_layers`` global linear maps ``linear``
        (``"matrix_exp"``: ``MatrixExpSymplectic``; ``"nak"``: ``LinearSymplectic``; ``"none"``), into the base
        ``"oscillator"`` (learned frequencies at ``beta``), ``"normal"`` (``N(0, I)``), ``"diagonal"`` (learned
        ``N(μ, diag σ²)``) or ``"mixture"`` (``components`` oscillators at ``beta`` from ``centres``, ``radius``,
        ``frequencies``; options only the mixture takes). Several linear layers represent nothing new but
        precondition gradient descent on ill-conditioned targets (the harmonic chain)."""
        who = f"{cls.__name__}.build"
        check_positive_int(n, "n", who)
        check_non_negative_int(blocks, "blocks", who)
        check_positive_int(linear_layers, "linear_layers", who)
        check_choice(linear, LINEAR, "linear", who)
        check_choice(base, BASES, "base", who)
        mixture = {"components": components, "centres": centres, "radius": radius, "frequencies": frequencies}
        if base != "mixture" and mixture != {"components": 8, "centres": None, "radius": 0.0, "frequencies": None}:
            raise ValueError(f"{who}: components, centres, radius and frequencies are options of base='mixture'")
        if isinstance(centres, torch.Tensor) or isinstance(frequencies, torch.Tensor):
            raise TypeError(f"{who}: give centres and frequencies as plain (nested) lists, for the config")
        layers: list[Transform] = []
        if blocks:
            layers.append(canonical_flow(n, blocks, hidden, householder, full_linear, zero_center, activation))
        for _ in range(linear_layers if linear != "none" else 0):
            if linear == "matrix_exp":
                layers.append(MatrixExpSymplectic(n))
            else:
                layers.append(LinearSymplectic(n, householder=householder, full=full_linear))
        if not layers:
            raise ValueError(f"{who}: blocks=0 and linear='none' leave no layers")
        if base == "mixture":
            distribution = PhaseSpaceGaussian.mixture(n, components, beta, centres, radius, frequencies)
        elif base == "oscillator":
            distribution = PhaseSpaceGaussian.oscillator(n, beta)
        elif base == "diagonal":
            distribution = PhaseSpaceGaussian.diagonal(n)
        else:
            distribution = PhaseSpaceGaussian.standard(n)
        flow = cls(CompositeTransform(layers), distribution)
        config = {"n": n, "blocks": blocks, "hidden": hidden, "linear": linear, "linear_layers": linear_layers}
        config |= {"householder": householder, "full_linear": full_linear, "zero_center": zero_center}
        config |= {"activation": activation, "base": base, "beta": float(beta)}
        if base == "mixture":
            config |= {
                "components": components,
                "centres": None if centres is None else [[float(v) for v in row] for row in centres],
                "radius": float(radius),
                "frequencies": None if frequencies is None else [float(v) for v in frequencies],
            }
        flow._config = config
        return flow

    def config(self) -> dict[str, Any]:
        """The arguments of :meth:`build` that made this flow (for ``canonflow.checkpoint.save_model``)."""
        if self._config is None:
            raise CheckpointError(
                f"{type(self).__name__}: a flow around a custom transform has no config; build it with "
                "CanonicalFlow.build or save its state_dict"
            )
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CanonicalFlow:
        """Rebuild an untrained flow from :meth:`config`."""
        return cls.build(**config)

    def save(self, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
        """Write the config and weights atomically to ``path`` (read back with ``canonflow.load``)."""
        save_model(path, self, extra)

    def compile(self, *args: Any, **options: Any) -> None:
        """Compile, in place, the transform in both directions (``torch.compile`` options as ``options``):
        ``log_prob`` runs it forward, sampling and reverse-KL training run its inverse. ``Module.compile`` would
        compile only ``forward``, which a flow does not use. The state dict is unchanged."""
        transform = self.transform
        transform.compile(*args, **options)
        transform.inverse = torch.compile(transform.inverse, *args, **options)


register_migration("PhaseSpaceFlow", "CanonicalFlow")  # density's flow before the one-flow reshape: same config


def check_flow(flow: object, who: str) -> CanonicalFlow:
    """``flow`` if it is a :class:`CanonicalFlow`, else a ``TypeError`` naming ``who``."""
    if not isinstance(flow, CanonicalFlow):
        raise TypeError(f"{who}: expected a CanonicalFlow, got {type(flow).__name__}")
    return flow
