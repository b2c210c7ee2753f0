"""A catalogue of Hamiltonian systems ``H(q, p)`` on phase space ``(B, 2n)`` with exact reference results.

Every system subclasses :class:`HamiltonianSystem` and is callable as ``H(x)``; :func:`get_system` builds one
by name. Your own system needs no subclass: ``HamiltonianSystem.from_callable(H, n)`` wraps any ``H(x)``,
``HamiltonianSystem.from_potential(V, n, mass=m)`` a potential ``V(q)`` (separable, ``H = Σ p²/(2m) + V``), both
with an optional ``sample_initial(num, generator)``; :func:`as_system` accepts a system or a plain ``H(x)``.
"""

from canonflow.systems.base import CallableSystem, HamiltonianSystem, InitialSampler, Quantity, as_system
from canonflow.systems.calogero_moser import CalogeroMoser
from canonflow.systems.centre_of_mass import CentreOfMassFrame
from canonflow.systems.coupled import CoupledOscillator
from canonflow.systems.double_well import DoubleWell
from canonflow.systems.fput import FPUT
from canonflow.systems.harmonic_chain import HarmonicChain
from canonflow.systems.henon_heiles import HenonHeiles
from canonflow.systems.kepler import Kepler, solve_kepler_equation
from canonflow.systems.oscillator import HarmonicOscillator
from canonflow.systems.pendulum import Pendulum, complete_elliptic_k
from canonflow.systems.registry import SYSTEMS, available_systems, get_system
from canonflow.systems.ring2d import Ring2D
from canonflow.systems.toda import Toda

__all__ = [
    "HamiltonianSystem",
    "CallableSystem",
    "InitialSampler",
    "Quantity",
    "as_system",
    "HarmonicOscillator",
    "Pendulum",
    "DoubleWell",
    "CoupledOscillator",
    "HenonHeiles",
    "Kepler",
    "Toda",
    "CalogeroMoser",
    "FPUT",
    "HarmonicChain",
    "Ring2D",
    "CentreOfMassFrame",
    "SYSTEMS",
    "available_systems",
    "get_system",
    "solve_kepler_equation",
    "complete_elliptic_k",
]
