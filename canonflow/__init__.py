"""canonflow: normalizing flows built from exact canonical (symplectic) transformations of phase space."""

from canonflow import (
    action_angle,
    data,
    density,
    distributions,
    estimators,
    hamiltonian_learning,
    integrators,
    losses,
    nn,
    phase_space,
    sampling,
    systems,
    testing,
    transforms,
)
from canonflow.builders import canonical_flow
from canonflow.checkpoint import load
from canonflow.flow import CanonicalFlow
from canonflow.validation import set_validation, validation, validation_enabled

__version__ = "0.2.0"

__all__ = [
    "__version__",
    "action_angle",
    "CanonicalFlow",
    "canonical_flow",
    "data",
    "density",
    "distributions",
    "estimators",
    "hamiltonian_learning",
    "integrators",
    "load",
    "losses",
    "nn",
    "phase_space",
    "sampling",
    "set_validation",
    "systems",
    "testing",
    "transforms",
    "validation",
    "validation_enabled",
]
