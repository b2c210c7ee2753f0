"""Action-angle coordinates learned as canonical flows; ``canonflow action-angle`` runs the reference benchmarks."""

from canonflow.action_angle.charts import (
    ActionShear,
    ActionTwist,
    AffineChart,
    AnchoredField,
    KeplerChart,
    action_shear_flow,
    normal_mode_chart,
    winding_flow,
)
from canonflow.action_angle.core import (
    ActionAngleFlow,
    action_conservation,
    angle_independence,
    angle_loss,
    combined_loss,
    evaluate,
    frequency_error,
    hamiltonian_loss,
    linear_fit,
    parameter_count,
    trajectory_loss,
    unwrap,
)

__all__ = [
    "ActionAngleFlow",
    "trajectory_loss",
    "hamiltonian_loss",
    "combined_loss",
    "angle_loss",
    "unwrap",
    "linear_fit",
    "action_conservation",
    "frequency_error",
    "angle_independence",
    "evaluate",
    "parameter_count",
    "KeplerChart",
    "AffineChart",
    "normal_mode_chart",
    "winding_flow",
    "ActionShear",
    "ActionTwist",
    "AnchoredField",
    "action_shear_flow",
]
