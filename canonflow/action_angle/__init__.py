"""Action-angle coordinates learned as canonical flows; ``canonflow action-angle`` runs the reference benchmarks.

* :mod:`~canonflow.action_angle.model`: :class:`ActionAngleFlow`, the map ``(q, p) ↦ (q̂, p̂)`` read as
  ``(I, φ)``, with ``fit``;
* :mod:`~canonflow.action_angle.losses`: the losses as composable values
  (``TrajectoryLoss() + 0.1 * HamiltonianLoss(H)``) and :func:`make_loss` for presets written as data;
* :mod:`~canonflow.action_angle.metrics`: held-out metrics (:func:`evaluate`);
* :mod:`~canonflow.action_angle.charts`: fixed charts, normal forms and action-preserving layers;
* :mod:`~canonflow.action_angle.families`: samplers of single orbit families.
"""

from canonflow.action_angle.batches import TrajectoryBatches
from canonflow.action_angle.charts import (
    ActionShear,
    ActionTwist,
    AffineChart,
    AnchoredField,
    BirkhoffChart,
    CalogeroMoserChart,
    KeplerChart,
    action_shear_flow,
    birkhoff_chart,
    make_chart,
    normal_mode_chart,
    winding_flow,
)
from canonflow.action_angle.families import toda_loop_orbits
from canonflow.action_angle.losses import (
    ActionLoss,
    AngleLoss,
    HamiltonianLoss,
    NormalFormLoss,
    TrajectoryBatch,
    TrajectoryLoss,
    make_loss,
)
from canonflow.action_angle.metrics import (
    action_conservation,
    action_error,
    angle_independence,
    evaluate,
    frequency_error,
    linear_fit,
    parameter_count,
    unwrap,
)
from canonflow.action_angle.model import ActionAngleFlow

__all__ = [
    "ActionAngleFlow",
    "TrajectoryBatch",
    "TrajectoryBatches",
    "TrajectoryLoss",
    "AngleLoss",
    "HamiltonianLoss",
    "NormalFormLoss",
    "ActionLoss",
    "make_loss",
    "unwrap",
    "linear_fit",
    "action_conservation",
    "action_error",
    "frequency_error",
    "angle_independence",
    "evaluate",
    "parameter_count",
    "KeplerChart",
    "CalogeroMoserChart",
    "AffineChart",
    "normal_mode_chart",
    "BirkhoffChart",
    "birkhoff_chart",
    "make_chart",
    "toda_loop_orbits",
    "winding_flow",
    "ActionShear",
    "ActionTwist",
    "AnchoredField",
    "action_shear_flow",
]
