"""canonflow: normalizing flows built from exact canonical (symplectic) transformations of phase space."""

from canonflow.validation import set_validation, validation, validation_enabled

__version__ = "0.1.0"

__all__ = ["__version__", "set_validation", "validation", "validation_enabled"]
