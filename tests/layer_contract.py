"""The contract every canonical layer must meet, shared by the layer test modules.

``make`` is a zero-argument factory returning a float64 layer in eval mode with randomized, non-identity
parameters; the checks below are the standards of the project (round trip, symplecticity, logabsdet,
no_grad, float32, gradients, nflows Flow, state_dict).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import torch
from nflows.flows import Flow

from canonflow.distributions import PhaseSpaceGaussian
from canonflow.testing import assert_invertible, assert_logabsdet_matches_jacobian, assert_symplectic

TOL = 1e-10


def randomize_(module: torch.nn.Module, scale: float = 0.4, seed: int = 0) -> torch.nn.Module:
    """Add ``scale * N(0, 1)`` noise to every parameter, so no layer is tested at the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_(scale * noise.to(parameter.dtype))
    return module


def sample(n: int, batch: int = 5, seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(batch, 2 * n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def check_round_trip(layer, n: int) -> None:
    assert_invertible(layer, sample(n), atol=TOL)


def check_symplectic(layer, n: int) -> None:
    x = sample(n)
    assert_symplectic(layer, x, atol=TOL)
    assert_symplectic(layer, x, atol=TOL, inverse=True)


def check_logabsdet(layer, n: int) -> None:
    x = sample(n)
    for direction in (layer.forward, layer.inverse):
        _, logabsdet = direction(x)
        assert logabsdet.shape == (x.shape[0],) and logabsdet.dtype == x.dtype
        assert torch.equal(logabsdet, torch.zeros_like(logabsdet))
    assert_logabsdet_matches_jacobian(layer, x, atol=TOL)


def check_no_grad(layer, n: int) -> None:
    x = sample(n)
    y, _ = layer(x)
    with torch.no_grad():
        y_ng, _ = layer(x)
        x_ng, _ = layer.inverse(y_ng)
    assert not y_ng.requires_grad
    torch.testing.assert_close(y_ng, y.detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(x_ng, x, rtol=0, atol=TOL)


def check_float32(layer, n: int) -> None:
    layer = layer.float()
    x = sample(n, dtype=torch.float32)
    assert_invertible(layer, x, atol=1e-4)
    assert layer(x)[0].dtype == torch.float32


def check_gradients(layer, n: int) -> None:
    x = sample(n, batch=16)
    y, _ = layer(x)
    (y.pow(3).sum() + layer.inverse(x)[0].pow(3).sum()).backward()
    for name, parameter in layer.named_parameters():
        if parameter.numel() == 0:
            continue
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


def check_nflows_flow(layer, n: int) -> None:
    flow = Flow(layer, PhaseSpaceGaussian.standard(n)).double()
    x = sample(n)
    z, _ = layer(x)
    expected = -0.5 * z.pow(2).sum(-1) - n * math.log(2 * math.pi)
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=0, atol=1e-12)
    draws = flow.sample(7)
    assert draws.shape == (7, 2 * n) and draws.dtype == torch.float64
    assert torch.isfinite(flow.log_prob(draws)).all()


def check_state_dict(layer, n: int, make: Callable[[], torch.nn.Module]) -> None:
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    other = randomize_(make(), seed=123)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    x = sample(n)
    torch.testing.assert_close(other(x)[0], layer(x)[0], rtol=0, atol=0)


CHECKS = {
    "round_trip": check_round_trip,
    "symplectic": check_symplectic,
    "logabsdet": check_logabsdet,
    "no_grad": check_no_grad,
    "float32": check_float32,
    "gradients": check_gradients,
    "nflows_flow": check_nflows_flow,
}


def run_check(name: str, make: Callable[[], torch.nn.Module], n: int) -> None:
    layer = make()
    if name == "state_dict":
        check_state_dict(layer, n, make)
    else:
        CHECKS[name](layer, n)


ALL_CHECKS = [*CHECKS, "state_dict"]
