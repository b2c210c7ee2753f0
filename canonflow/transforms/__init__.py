"""Canonical layers: exact, invertible, symplectic nflows transforms of phase space ``(B, 2n)``.

Every layer's ``forward`` maps data to latent and ``inverse`` latent to data (the nflows convention); both
return ``logabsdet`` zeros of shape ``(B,)``.
"""

from canonflow.transforms.base import SymplecticTransform
from canonflow.transforms.composite import SymplecticComposite
from canonflow.transforms.elementary import Exchange, SymplecticScaling
from canonflow.transforms.hamiltonian_flows import ImplicitMidpointFlow, LeapfrogFlow
from canonflow.transforms.linear import LinearSymplectic, MatrixExpSymplectic
from canonflow.transforms.point import PointTransform
from canonflow.transforms.shears import MomentumShear, PositionShear
from canonflow.transforms.zero_center import ZeroCenter

__all__ = [
    "SymplecticTransform",
    "SymplecticComposite",
    "MomentumShear",
    "PositionShear",
    "LinearSymplectic",
    "MatrixExpSymplectic",
    "ZeroCenter",
    "Exchange",
    "SymplecticScaling",
    "PointTransform",
    "LeapfrogFlow",
    "ImplicitMidpointFlow",
]
