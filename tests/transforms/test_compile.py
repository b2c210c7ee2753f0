"""Every layer, a whole flow and a training step under ``torch.compile``: the same values and gradients as eager.

Tracing runs through ``backend="aot_eager"`` (dynamo and AOT autograd, the graphs inductor would compile, without
generating code) with ``fullgraph=True``, so a graph break fails the test. Not here, for their cost:
``ImplicitMidpointFlow``, whose fixed-point solve stops at a tolerance (a data-dependent loop that compiles with
graph breaks, recompiling for 10 s), and inductor's code generation, which ``benchmarks/bench_compile.py`` runs
at ``2n`` = 4, 32 and 128.
"""

from __future__ import annotations

import pytest
import torch
from layer_contract import LAYER_FACTORIES, make_layer, sample

from canonflow import CanonicalFlow

N = 3


@pytest.fixture(autouse=True)
def fresh_compiler():
    """Each test compiles from scratch and leaves no compiled code behind for other tests."""
    torch.compiler.reset()
    yield
    torch.compiler.reset()


def _outputs_and_gradients(function, layer: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """``function(x)``'s output and the gradients of a scalar of it with respect to ``x`` and the parameters."""
    x = x.clone().requires_grad_(True)
    y, _ = function(x)
    parameters = [parameter for parameter in layer.parameters() if parameter.requires_grad]
    gradients = torch.autograd.grad((y.sin() * torch.arange(1, y.shape[1] + 1)).sum(), [x, *parameters])
    return [y.detach(), *gradients]


@pytest.mark.parametrize("kind", sorted(LAYER_FACTORIES))
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_compiled_layer_equals_eager(kind: str, direction: str) -> None:
    layer = make_layer(LAYER_FACTORIES[kind], N)
    function = layer if direction == "forward" else layer.inverse
    compiled = torch.compile(function, backend="aot_eager", fullgraph=True)
    x = sample(N, batch=5)
    for eager, traced in zip(
        _outputs_and_gradients(function, layer, x), _outputs_and_gradients(compiled, layer, x), strict=True
    ):
        torch.testing.assert_close(traced, eager, rtol=0, atol=1e-10)


def test_compiled_training_step_equals_eager() -> None:
    # a reverse-KL step of a flow with a learned base: draws, log q, a potential and the gradients of all of it
    flow = CanonicalFlow.build(N, blocks=2, hidden=16, linear="nak").double()

    def loss(z: torch.Tensor) -> torch.Tensor:
        x, log_q = flow.push(z)
        return (log_q + 0.5 * x.square().sum(-1) + 0.1 * x[:, 0] ** 4).mean()

    z = sample(N, batch=16)
    parameters = list(flow.parameters())
    eager = torch.autograd.grad(loss(z), parameters)
    traced = torch.autograd.grad(torch.compile(loss, backend="aot_eager", fullgraph=True)(z), parameters)
    for expected, got in zip(eager, traced, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
