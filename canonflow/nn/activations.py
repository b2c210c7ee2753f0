"""The smooth activations canonflow networks accept, by name."""

from __future__ import annotations

from torch import nn

__all__ = ["ACTIVATIONS", "make_activation"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "softplus": nn.Softplus, "silu": nn.SiLU, "gelu": nn.GELU}


def make_activation(name: str, who: str) -> nn.Module:
    """Instantiate the activation called ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"{who}: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
