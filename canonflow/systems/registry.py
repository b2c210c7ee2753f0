"""Look up systems by name."""

from __future__ import annotations

from canonflow.systems.base import HamiltonianSystem
from canonflow.systems.calogero_moser import CalogeroMoser
from canonflow.systems.coupled import CoupledOscillator
from canonflow.systems.double_well import DoubleWell
from canonflow.systems.fput import FPUT
from canonflow.systems.harmonic_chain import HarmonicChain
from canonflow.systems.henon_heiles import HenonHeiles
from canonflow.systems.kepler import Kepler
from canonflow.systems.oscillator import HarmonicOscillator
from canonflow.systems.pendulum import Pendulum
from canonflow.systems.ring2d import Ring2D
from canonflow.systems.toda import Toda

__all__ = ["SYSTEMS", "get_system", "available_systems"]

SYSTEMS: dict[str, type[HamiltonianSystem]] = {
    "oscillator": HarmonicOscillator,
    "pendulum": Pendulum,
    "double_well": DoubleWell,
    "coupled_oscillator": CoupledOscillator,
    "henon_heiles": HenonHeiles,
    "kepler": Kepler,
    "toda": Toda,
    "calogero_moser": CalogeroMoser,
    "fput": FPUT,
    "harmonic_chain": HarmonicChain,
    "ring2d": Ring2D,
}
"""Registry name -> system class."""


def available_systems() -> list[str]:
    """The registry names, sorted."""
    return sorted(SYSTEMS)


def get_system(name: str, **kwargs: object) -> HamiltonianSystem:
    """Build the system registered as ``name`` with constructor keyword arguments ``kwargs``.

    e.g. ``get_system("kepler", d=3)``. An unknown name raises ``ValueError`` listing the valid ones.

    >>> import torch
    >>> oscillator = get_system("oscillator")
    >>> oscillator.hamiltonian(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    tensor([0.5000], dtype=torch.float64)
    """
    if not isinstance(name, str) or name not in SYSTEMS:
        raise ValueError(f"get_system: unknown system {name!r}; valid names: {', '.join(available_systems())}")
    return SYSTEMS[name](**kwargs)
