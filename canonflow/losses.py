"""Losses as values: ``loss(model, batch) -> 0-dim tensor``, composed with ``+`` and scalar ``*``.

A training objective is usually a weighted sum of terms, ``L = Σ_i w_i L_i``. Written as values, the sum is an
argument instead of a set of switches::

    loss = TrajectoryLoss() + 0.1 * HamiltonianLoss(H)
    model.fit(trajectories, loss=loss)

Every term is a :class:`Loss`; ``a + b`` and ``w * a`` build a :class:`LossSum`, whose call evaluates the terms in
the order written and adds ``w_i L_i`` (a term of weight ``0`` is not evaluated; a weight of ``1`` is not
multiplied, so ``A() + B()`` computes exactly ``A(m, b) + B(m, b)``).
"""

from __future__ import annotations

from typing import Any

import torch

from canonflow.validation import check_non_negative_float

__all__ = ["Loss", "LossSum"]


class Loss:
    """A loss term: ``loss(model, batch)`` returns a 0-dim tensor to minimize.

    Subclasses implement :meth:`__call__` and set ``separable = True`` when the value is a mean of independent
    per-sample terms over the batch, so that the mean of the values on the shards of a batch (as distributed
    data parallel training averages gradients) equals the value on the whole batch. A loss that compares samples
    across the batch (a variance across it, a normalization by its spread) keeps ``separable = False``; a
    distributed trainer then evaluates the whole batch on every process.
    """

    separable: bool = False

    def __call__(self, model: Any, batch: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement __call__(model, batch)")

    def terms(self) -> tuple[tuple[float, Loss], ...]:
        """The weighted terms ``((w_1, L_1), ...)`` of this loss; a plain term is ``((1.0, self),)``."""
        return ((1.0, self),)

    def __add__(self, other: object) -> LossSum:
        if not isinstance(other, Loss):
            return NotImplemented
        return LossSum(self.terms() + other.terms())

    def __mul__(self, weight: object) -> LossSum:
        if isinstance(weight, Loss):
            return NotImplemented
        w = check_non_negative_float(weight, "a loss weight", type(self).__name__)
        return LossSum(tuple((w * v, term) for v, term in self.terms()))

    __rmul__ = __mul__

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={_name(value)}" for key, value in vars(self).items())
        return f"{type(self).__name__}({options})"


class LossSum(Loss):
    """``Σ_i w_i L_i`` over ``terms = ((w_1, L_1), ...)`` (weights finite and ``>= 0``), evaluated in order."""

    def __init__(self, terms: tuple[tuple[float, Loss], ...]) -> None:
        if not terms or not all(isinstance(term, Loss) for _, term in terms):
            raise TypeError(f"LossSum: expected a non-empty tuple of (weight, Loss) pairs, got {terms!r}")
        self._terms = tuple((check_non_negative_float(w, "a loss weight", "LossSum"), term) for w, term in terms)

    @property
    def separable(self) -> bool:  # type: ignore[override]
        """Whether every term of non-zero weight is separable (see :class:`Loss`)."""
        return all(term.separable for weight, term in self._terms if weight != 0)

    def terms(self) -> tuple[tuple[float, Loss], ...]:
        return self._terms

    def __call__(self, model: Any, batch: Any) -> torch.Tensor:
        total: torch.Tensor | None = None
        for weight, term in self._terms:
            if weight == 0:
                continue
            value = term(model, batch)
            value = value if weight == 1 else weight * value
            total = value if total is None else total + value
        if total is None:
            raise ValueError(f"LossSum: every weight of {self!r} is 0, so there is nothing to minimize")
        return total

    def __repr__(self) -> str:
        return " + ".join(repr(term) if w == 1 else f"{w:g} * {term!r}" for w, term in self._terms)


def _name(value: object) -> str:
    """A short readable name: a function's qualified name, a tensor's shape, else ``repr``."""
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    if callable(value) and hasattr(value, "__qualname__"):
        return value.__qualname__
    return repr(value)
