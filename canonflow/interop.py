"""Canonical layers as ``torch.distributions`` transforms, for ``TransformedDistribution``, zuko and Pyro.

canonflow follows nflows: a layer ``T``'s ``forward`` maps data ``x`` to latent ``z = T(x)`` and ``inverse``
maps ``z`` back to ``x``, both on ``(B, 2n)``. The other libraries use one direction or the other, so the adapters
take a ``direction``:

- ``torch.distributions.TransformedDistribution`` and Pyro map a base draw ``z`` to data ``x``: use
  ``direction="inverse"`` (``T⁻¹``);
- a stage of a zuko ``Flow`` maps data ``x`` to latent ``z`` (zuko's ``NormalizingFlow``): use
  ``direction="forward"`` (``T``, the default).

A canonical map has ``det ∂T/∂x = 1``, so every log-determinant here is exactly zero and the density is the base
density moved along the map: ``log q(x) = log p(T(x))``.

:class:`TorchTransform` is a ``torch.distributions.Transform``, not an ``nn.Module``: it holds the canonflow layer
as ``.module``, and that module owns the parameters. Train them as any module's,
``torch.optim.Adam(t.module.parameters())``, register them with Pyro as ``pyro.module("name", t.module)``, and move
or convert the module (``t.module.double()``) rather than the transform. :class:`CanonicalLazyTransform` is the
``nn.Module`` that zuko's ``Flow`` takes as a stage; its ``parameters()`` are the layer's, so
``flow.parameters()`` trains them. zuko is optional: nothing here imports it until a
:class:`CanonicalLazyTransform` is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from nflows.flows import Flow
from nflows.transforms import CompositeTransform, InverseTransform
from nflows.transforms import Transform as NflowsTransform
from torch import nn
from torch.distributions import Transform, constraints

from canonflow.transforms import SymplecticTransform
from canonflow.validation import check_choice

__all__ = ["TorchTransform", "as_torch_transform", "CanonicalLazyTransform", "DIRECTIONS"]

DIRECTIONS = ("forward", "inverse")
"""The directions an adapter can run a layer ``T`` in: ``"forward"`` is ``T`` (data -> latent), ``"inverse"``
``T⁻¹`` (latent -> data)."""


def _inner_transforms(module: nn.Module) -> Iterator[NflowsTransform]:
    """The nflows transforms directly inside ``module``, looking through containers such as ``nn.ModuleList``."""
    for child in module.children():
        if isinstance(child, NflowsTransform):
            yield child
        else:
            yield from _inner_transforms(child)


def _is_canonical(transform: NflowsTransform) -> bool:
    """Whether ``transform`` is a canonflow layer or an nflows composition or inverse made only of them."""
    if isinstance(transform, SymplecticTransform):
        return True
    if isinstance(transform, (CompositeTransform, InverseTransform)):
        inner = list(_inner_transforms(transform))
        return bool(inner) and all(_is_canonical(part) for part in inner)
    return False


def _check_canonical(transform: object, who: str) -> NflowsTransform:
    if isinstance(transform, Flow):
        raise TypeError(
            f"{who}: expected a canonical transform, got the flow {type(transform).__name__}; pass its "
            ".transform (data -> latent)"
        )
    if not isinstance(transform, NflowsTransform) or not _is_canonical(transform):
        raise TypeError(
            f"{who}: expected a canonical transform (a canonflow layer, a SymplecticComposite, or an nflows "
            f"CompositeTransform/InverseTransform of them), got {type(transform).__name__}; other transforms "
            "have a log-determinant that is not known to be zero"
        )
    return transform


def _check_cache_size(cache_size: object, who: str) -> int:
    if isinstance(cache_size, bool) or cache_size not in (0, 1):
        raise ValueError(f"{who}: expected cache_size 0 (no caching) or 1 (the latest pair), got {cache_size!r}")
    return int(cache_size)


def _check_points(x: object, who: str) -> None:
    """A ``TypeError`` or ``ValueError`` naming ``who`` unless ``x`` is a tensor with an event dimension; the layer
    checks the rest (width ``2n``, dtype, device, finite values)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor of shape (..., 2n), got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError(f"{who}: expected a tensor of shape (..., 2n), got a 0-dimensional tensor")


class TorchTransform(Transform):
    """A canonical nflows transform ``T`` as a bijective ``torch.distributions.Transform`` on ``ℝ²ⁿ``.

    ``direction="forward"`` makes ``t(x) = T(x)`` (data -> latent, what a zuko flow stage maps);
    ``direction="inverse"`` makes ``t(z) = T⁻¹(z)`` (latent -> data, what ``TransformedDistribution`` and Pyro
    map). ``t.inv`` is the other direction. Points have shape ``(..., 2n)``: the event is the last dimension
    (``domain = codomain = independent(real, 1)``), leading batch dimensions are flattened into the layer's
    ``(B, 2n)`` and restored, and ``log_abs_det_jacobian(x, y)`` is zeros of shape ``x.shape[:-1]`` (exact,
    ``det ∂T/∂x = 1``). ``sign`` is left undefined, as torch does for multivariate transforms. The layer's own
    checks (width ``2n``, floating dtype, finite, its dtype and device) raise with its name.

    Args:
        transform: a canonflow layer, a ``SymplecticComposite``, or an nflows ``CompositeTransform`` or
            ``InverseTransform`` built only of them (``CanonicalFlow.transform``). Kept as ``.module``, it owns the
            parameters: train ``t.module.parameters()``.
        direction: ``"forward"`` (``T``) or ``"inverse"`` (``T⁻¹``).
        cache_size: ``0`` (default) recomputes every call; ``1`` keeps the latest pair ``(x, y)``, so that
            ``t.inv(t(x))`` returns ``x`` itself without calling the layer (torch's caching: the returned tensor is
            the cached one, with its own autograd history).

    >>> import torch
    >>> from canonflow import canonical_flow
    >>> from canonflow.interop import TorchTransform
    >>> layer = canonical_flow(2, blocks=1, hidden=8, zero_center=False).double()
    >>> to_data = TorchTransform(layer, "inverse")
    >>> base = torch.distributions.Normal(torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    >>> q = torch.distributions.TransformedDistribution(base, [to_data])
    >>> x = q.rsample((3, 5))
    >>> x.shape, q.log_prob(x).shape
    (torch.Size([3, 5, 4]), torch.Size([3, 5]))
    >>> bool(torch.allclose(q.log_prob(x), base.log_prob(layer(x.reshape(15, 4))[0]).sum(-1).reshape(3, 5)))
    True
    """

    bijective = True
    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)

    def __init__(self, transform: NflowsTransform, direction: str = "forward", cache_size: int = 0) -> None:
        who = type(self).__name__
        self.module = _check_canonical(transform, who)
        self.direction = check_choice(direction, DIRECTIONS, "direction", who)
        self.cache_size = _check_cache_size(cache_size, who)
        super().__init__(cache_size=self.cache_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.module).__name__}, direction={self.direction!r})"

    def with_cache(self, cache_size: int = 1) -> TorchTransform:
        """This transform with ``cache_size`` (``0`` or ``1``): itself if unchanged, else a new one on the same
        ``module`` and ``direction``."""
        if _check_cache_size(cache_size, f"{type(self).__name__}.with_cache") == self.cache_size:
            return self
        return TorchTransform(self.module, self.direction, cache_size)

    def _map(self, x: torch.Tensor, inverse: bool, who: str) -> torch.Tensor:
        """``T(x)`` (``inverse=False``) or ``T⁻¹(x)`` on ``(..., 2n)`` through the layer's ``(B, 2n)``."""
        _check_points(x, who)
        flat = x if x.dim() == 2 else x.reshape(math.prod(x.shape[:-1]), x.shape[-1])
        y = self.module.inverse(flat)[0] if inverse else self.module(flat)[0]
        return y if x.dim() == 2 else y.reshape(x.shape)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        """``x -> T(x)`` (``"forward"``) or ``x -> T⁻¹(x)`` (``"inverse"``), ``(..., 2n) -> (..., 2n)``."""
        return self._map(x, self.direction == "inverse", f"{type(self).__name__}.__call__")

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The map back: ``y -> T⁻¹(y)`` (``"forward"``) or ``y -> T(y)`` (``"inverse"``), ``(..., 2n)`` each."""
        return self._map(y, self.direction == "forward", f"{type(self).__name__}.inv")

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``log|det ∂y/∂x| = 0`` exactly: zeros of shape ``x.shape[:-1]`` in ``x``'s dtype and device."""
        _check_points(x, f"{type(self).__name__}.log_abs_det_jacobian")
        return x.new_zeros(x.shape[:-1])


def as_torch_transform(transform: NflowsTransform, direction: str = "forward", cache_size: int = 0) -> TorchTransform:
    """``TorchTransform(transform, direction, cache_size)``: ``T`` (``"forward"``, data -> latent) or ``T⁻¹``
    (``"inverse"``, latent -> data) as a ``torch.distributions.Transform`` on ``(..., 2n)``, log-determinant zero.

    Use ``"inverse"`` for ``TransformedDistribution(base, [t])`` and Pyro, whose transforms map base draws to data.
    """
    return TorchTransform(transform, direction, cache_size)


class CanonicalLazyTransform(nn.Module):
    """A canonical layer ``T`` as a stage of a zuko ``Flow``: ``forward(c)`` returns a :class:`TorchTransform`.

    zuko's ``Flow(transform, base)`` builds ``NormalizingFlow(f, p)`` with ``f`` mapping data ``x`` to latent
    ``z`` and ``log q(x) = log p(f(x)) + log|det ∂f/∂x|``, sampling ``x = f⁻¹(z)``: the nflows direction, so the
    default ``direction="forward"`` puts ``T`` in the flow as it is (``"inverse"`` puts ``T⁻¹``). The context
    ``c`` is ignored (canonical layers are unconditional), so the stage also fits a conditional flow. The layer is
    a submodule: ``flow.parameters()``, ``flow.double()`` and ``flow.state_dict()`` include it.

    Building one imports zuko (``pip install zuko``) and registers this class as a virtual subclass of
    ``zuko.flows.LazyTransform``, so that zuko accepts it wherever it accepts its own lazy transforms; canonflow
    itself does not depend on zuko. ``.inv`` is ``zuko.flows.LazyInverse(self)``.

    Args:
        transform: a canonical nflows transform, as for :class:`TorchTransform`.
        direction: ``"forward"`` (``T``, default) or ``"inverse"`` (``T⁻¹``), in zuko's data -> latent sense.
    """

    def __init__(self, transform: NflowsTransform, direction: str = "forward") -> None:
        super().__init__()
        who = type(self).__name__
        try:
            from zuko.flows import LazyTransform
        except ImportError as error:
            raise ImportError(f"{who}: needs zuko, which canonflow does not install; pip install zuko") from error
        LazyTransform.register(CanonicalLazyTransform)
        self.transform = _check_canonical(transform, who)
        self.direction = check_choice(direction, DIRECTIONS, "direction", who)

    def extra_repr(self) -> str:
        return f"direction={self.direction!r}"

    def forward(self, c: torch.Tensor | None = None) -> TorchTransform:
        """The stage's transform, ``TorchTransform(self.transform, self.direction)``; ``c`` is ignored."""
        return TorchTransform(self.transform, self.direction)

    @property
    def inv(self) -> nn.Module:
        """The lazy inverse stage ``zuko.flows.LazyInverse(self)``, whose transform is this one's ``.inv``."""
        from zuko.flows import LazyInverse

        return LazyInverse(self)
