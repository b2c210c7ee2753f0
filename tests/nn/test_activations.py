"""The activation table: every entry is smooth (shears differentiate through it), unknown names are refused."""

from __future__ import annotations

import pytest
import torch

from canonflow.nn import ACTIVATIONS
from canonflow.nn.activations import make_activation


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_is_smooth(name: str) -> None:
    activation = make_activation(name, "test")
    assert isinstance(activation, ACTIVATIONS[name])
    x = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    (first,) = torch.autograd.grad(activation(x).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), x)
    assert torch.isfinite(second).all() and second.abs().max() > 0.1  # ReLU's is 0 wherever it is defined


def test_an_unknown_activation_is_refused_naming_the_caller_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"Caller: unknown activation 'relu'; choose one of \['gelu'"):
        make_activation("relu", "Caller")
