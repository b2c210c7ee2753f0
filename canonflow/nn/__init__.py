"""Networks used inside canonical layers: gradient fields and plain MLPs."""

from canonflow.nn.activations import ACTIVATIONS
from canonflow.nn.fields import GradientField, IrrotationalMLP
from canonflow.nn.mlp import MLP

__all__ = ["ACTIVATIONS", "GradientField", "IrrotationalMLP", "MLP"]
