"""``MLP``: shapes, the flat start of a potential, the optional output bias."""

from __future__ import annotations

import pytest
import torch

from canonflow.nn import MLP


@pytest.mark.parametrize(
    "options, shape",
    [
        ({}, (5,)),
        ({"squeeze": False}, (5, 1)),
        ({"out_features": 3}, (5, 3)),
        ({"out_features": 3, "depth": 1}, (5, 3)),
    ],
)
def test_output_shape(options: dict, shape: tuple[int, ...]) -> None:
    assert MLP(4, **options)(torch.randn(5, 4)).shape == shape


def test_depth_and_hidden_set_the_layers() -> None:
    mlp = MLP(4, 2, hidden=7, depth=3)
    linears = [module for module in mlp.modules() if isinstance(module, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(4, 7), (7, 7), (7, 7), (7, 2)]


@pytest.mark.parametrize("output_bias", [True, False])
def test_zero_init_starts_flat(output_bias: bool) -> None:
    mlp = MLP(3, zero_init=True, output_bias=output_bias)
    torch.testing.assert_close(mlp(torch.randn(6, 3)), torch.zeros(6), rtol=0, atol=0)
    assert (mlp.net[-1].bias is not None) == output_bias
    assert MLP(3)(torch.randn(6, 3)).abs().max() > 0


@pytest.mark.parametrize("options", [{"hidden": -3}, {"depth": 0}, {"in_features": 0}, {"activation": "relu"}])
def test_bad_constructor_arguments_are_refused_by_name(options: dict) -> None:
    with pytest.raises((ValueError, TypeError), match="MLP: "):
        MLP(**{"in_features": 2, **options})


def test_hidden_and_output_layers_are_the_network_s_modules_in_order() -> None:
    mlp = MLP(3, 1, hidden=5, depth=3, activation="softplus")
    pairs = mlp.hidden_layers
    assert len(pairs) == 3 and mlp.output_layer is mlp.net[-1]
    assert [module for pair in pairs for module in pair] + [mlp.output_layer] == list(mlp.net)
    assert [linear.in_features for linear, _ in pairs] == [3, 5, 5]
    assert all(isinstance(activation, torch.nn.Softplus) for _, activation in pairs)
