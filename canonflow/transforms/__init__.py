"""Canonical layers: exact, invertible, symplectic nflows transforms of phase space ``(B, 2n)``."""

from canonflow.transforms.base import SymplecticTransform

__all__ = ["SymplecticTransform"]
