"""A plain multilayer perceptron, used for potentials and Hamiltonians."""

from __future__ import annotations

import torch
from torch import nn

from canonflow.nn.activations import make_activation
from canonflow.validation import check_positive_int

__all__ = ["MLP"]


class MLP(nn.Module):
    """``(B, in_features) -> (B, out_features)`` with ``depth`` hidden layers of width ``hidden``.

    With ``out_features=1`` and ``squeeze=True`` it maps to ``(B,)``: a scalar potential or Hamiltonian.
    The last layer starts at zero when ``zero_init`` is set, so a potential starts flat. Use
    ``output_bias=False`` for potentials that only enter through their gradient (a constant does nothing).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        hidden: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        squeeze: bool = True,
        zero_init: bool = False,
        output_bias: bool = True,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        check_positive_int(in_features, "in_features", who)
        check_positive_int(out_features, "out_features", who)
        check_positive_int(hidden, "hidden", who)
        check_positive_int(depth, "depth", who)
        widths = [in_features] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), make_activation(activation, who)]
        last = nn.Linear(widths[-1], out_features, bias=output_bias)
        if zero_init:
            nn.init.zeros_(last.weight)
        layers.append(last)
        if zero_init and output_bias:
            nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers)
        self.squeeze = squeeze and out_features == 1

    @property
    def hidden_layers(self) -> list[tuple[nn.Linear, nn.Module]]:
        """The ``depth`` hidden layers as ``(linear, activation)`` pairs, from the input on."""
        layers = list(self.net)
        return list(zip(layers[0:-1:2], layers[1:-1:2], strict=True))

    @property
    def output_layer(self) -> nn.Linear:
        """The last, linear layer."""
        return self.net[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y.squeeze(-1) if self.squeeze else y
