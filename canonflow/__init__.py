"""canonflow: normalizing flows built from exact canonical (symplectic) transformations of phase space."""

from canonflow import density, distributions, nn, phase_space, testing, transforms
from canonflow.builders import canonical_flow
from canonflow.checkpoint import load
from canonflow.validation import set_validation, validation, validation_enabled

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "canonical_flow",
    "load",
    "density",
    "distributions",
    "nn",
    "phase_space",
    "set_validation",
    "testing",
    "transforms",
    "validation",
    "validation_enabled",
]
