"""Fixed, physics-informed canonical first layers ("charts") for :class:`~canonflow.action_angle.ActionAngleFlow`.

* :mod:`~canonflow.action_angle.charts.fixed`: closed-form charts (Kepler, Calogero–Moser, affine normal modes);
* :mod:`~canonflow.action_angle.charts.normal_forms`: Birkhoff normal-form charts at an equilibrium;
* :mod:`~canonflow.action_angle.charts.action_preserving`: learned layers that keep a chart's actions and
  winding numbers.

A model stores its chart as ``{"name": one of CHARTS, **options}`` and rebuilds it with :func:`make_chart`.
"""

from __future__ import annotations

from canonflow.action_angle.charts.action_preserving import (
    ActionShear,
    ActionTwist,
    AnchoredField,
    ScaledAnchoredField,
    ScaledTwistField,
    action_shear_flow,
    winding_flow,
)
from canonflow.action_angle.charts.fixed import AffineChart, CalogeroMoserChart, KeplerChart, normal_mode_chart
from canonflow.action_angle.charts.normal_forms import BirkhoffChart, birkhoff_chart, taylor_part
from canonflow.transforms.base import SymplecticTransform

__all__ = [
    "KeplerChart",
    "CalogeroMoserChart",
    "AffineChart",
    "normal_mode_chart",
    "BirkhoffChart",
    "birkhoff_chart",
    "taylor_part",
    "ActionShear",
    "ActionTwist",
    "AnchoredField",
    "ScaledAnchoredField",
    "ScaledTwistField",
    "action_shear_flow",
    "winding_flow",
    "make_chart",
    "CHARTS",
]

CHARTS = {
    "kepler": KeplerChart,
    "affine": AffineChart,
    "birkhoff": BirkhoffChart,
    "calogero_moser": CalogeroMoserChart,
}
"""Chart constructors by name (``ActionAngleFlow(chart={"name": ..., **options})``)."""


def make_chart(spec: dict) -> SymplecticTransform:
    """Build a chart from ``{"name": one of CHARTS, **keyword arguments}``."""
    if not isinstance(spec, dict) or spec.get("name") not in CHARTS:
        raise ValueError(f"chart must be a dict with 'name' one of {sorted(CHARTS)}, got {spec!r}")
    options = {key: value for key, value in spec.items() if key != "name"}
    return CHARTS[spec["name"]](**options)
