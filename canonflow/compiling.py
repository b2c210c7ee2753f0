"""``canonflow.compile``: ``torch.compile`` a model in place, where its time goes, keeping it saveable.

``torch.compile(flow)`` is the wrong call for a flow: it returns a wrapper that compiles only ``forward``, which an
nflows ``Flow`` does not use (``log_prob``, ``sample`` and the estimators call its transform), and whose state-dict
keys gain an ``_orig_mod.`` prefix that ``canonflow.load`` cannot read. :func:`compile` compiles in place
(``torch.nn.Module.compile``) what does the work: any module's ``forward``, and for a
:class:`~canonflow.flow.CanonicalFlow` (:meth:`~canonflow.flow.CanonicalFlow.compile`) its transform in both
directions, so ``log_prob``, ``sample``, ``sample_and_log_prob`` and every trainer run it compiled. Parameters,
state dict, ``save`` and ``canonflow.load`` are unchanged.

Compiling costs seconds to tens of seconds on the first call (and again for each new input shape until shapes are
marked dynamic); it pays in long runs of small and medium flows, where a step is mostly framework overhead
(docs/performance.md has the measurements). Layers' input checks of shape and dtype run while tracing; the
NaN/Inf check is left out of compiled code.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch

__all__ = ["compile"]

Model = TypeVar("Model", bound=torch.nn.Module)


def compile(model: Model, **options: Any) -> Model:  # noqa: A001 - canonflow.compile mirrors torch.compile
    """Compile ``model`` in place with ``torch.compile(**options)`` (e.g. ``backend``, ``mode``, ``dynamic``) and
    return it: a :class:`~canonflow.flow.CanonicalFlow`'s transform (forward and inverse), any other module's
    ``forward``.

    >>> import canonflow, torch
    >>> flow = canonflow.CanonicalFlow.build(1, blocks=1, hidden=8).double()
    >>> x = torch.randn(4, 2, dtype=torch.float64)
    >>> eager = flow.log_prob(x)
    >>> flow = canonflow.compile(flow, backend="aot_eager")
    >>> bool(torch.allclose(flow.log_prob(x), eager, rtol=0, atol=1e-12))
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"canonflow.compile: expected a torch.nn.Module, got {type(model).__name__}")
    model.compile(**options)  # in place; CanonicalFlow.compile compiles its transform both ways
    return model
