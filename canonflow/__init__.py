"""canonflow: normalizing flows built from exact canonical (symplectic) transformations of phase space.

The subpackages and the names below are imported on first use (PEP 562), so ``import canonflow`` and the command
line's ``--help`` and ``--version`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_SUBMODULES = (
    "action_angle",
    "data",
    "density",
    "distributions",
    "estimators",
    "hamiltonian_learning",
    "integrators",
    "losses",
    "nn",
    "phase_space",
    "sampling",
    "systems",
    "testing",
    "transforms",
    "validation",
)
_NAMES = {
    "CanonicalFlow": "canonflow.flow",
    "canonical_flow": "canonflow.builders",
    "compile": "canonflow.compiling",
    "load": "canonflow.checkpoint",
    "set_validation": "canonflow.validation",
    "validation_enabled": "canonflow.validation",
}

__all__ = ["__version__", *_SUBMODULES, *_NAMES]


def __getattr__(name: str) -> Any:
    """Import a subpackage or a top-level name on first use."""
    if name in _SUBMODULES:
        return importlib.import_module(f"canonflow.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'canonflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
