"""The contract every canonical layer must meet, shared by the layer test modules (as nflows' transform_test.py).

The test module of each layer (``tests/transforms/test_<module>.py``, and the applications' tests for their own
layers) builds it with ``make_layer`` (float64, eval mode, randomized non-identity parameters) and runs every check
of ``ALL_CHECKS`` at the sizes ``SIZES``:

- ``round_trip``: ``inverse(forward(x)) = x`` and ``forward(inverse(x)) = x`` to ``TOL`` at the batch sizes ``BATCHES``;
- ``symplectic``: ``JᵀΩJ = Ω`` to ``TOL`` for ``forward`` and ``inverse`` at the batch sizes ``BATCHES``;
- ``no_grad``, ``float32``, ``gradients``, ``nflows_flow``, ``state_dict``.

It also runs ``check_bad_input`` for each ``BAD_INPUTS`` case (and, for a layer with parameters, each
``MISMATCHED_INPUTS`` case) in both directions. The ``logabsdet`` is not part of the contract:
``SymplecticTransform`` and ``SymplecticComposite`` return zeros of shape ``(B,)`` by construction (tested once, in
``tests/transforms/test_base.py`` and ``test_composite.py``), ``log|det J| = 0`` follows from ``JᵀΩJ = Ω``, and a
nonzero ``logabsdet`` would also fail ``nflows_flow``, whose expected density assumes zero.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
import torch
from nflows.flows import Flow
from nflows.transforms import LULinear
from randomness import manual_seed

from canonflow import canonical_flow
from canonflow.distributions import PhaseSpaceGaussian
from canonflow.nn import MLP, GradientField, IrrotationalMLP
from canonflow.testing import assert_invertible, assert_symplectic
from canonflow.transforms import (
    Exchange,
    LeapfrogFlow,
    LinearSymplectic,
    MatrixExpSymplectic,
    MomentumShear,
    PointTransform,
    PositionShear,
    SymplecticScaling,
    ZeroCenter,
)

TOL = 1e-10
SIZES = (1, 2, 3, 8)
"""The phase-space dimensions ``n`` every layer is checked at."""
BATCHES = (1, 5)
"""The batch sizes of the round-trip and symplecticity checks."""
DIRECTIONS = ("forward", "inverse")
LAYER_FACTORIES: dict[str, Callable[[int], torch.nn.Module]] = {
    "momentum_shear_irrotational": lambda n: MomentumShear(IrrotationalMLP(n, 16)),
    "momentum_shear_autograd": lambda n: MomentumShear(GradientField(MLP(n, 1, 16, 2, output_bias=False), n)),
    "position_shear_irrotational": lambda n: PositionShear(IrrotationalMLP(n, 16, activation="softplus")),
    "linear_diagonal": lambda n: LinearSymplectic(n, householder=2),
    "linear_full": lambda n: LinearSymplectic(n, householder=2, full=True),
    "matrix_exp": MatrixExpSymplectic,
    "exchange": Exchange,
    "scaling": SymplecticScaling,
    "zero_center": ZeroCenter,
    "point": lambda n: PointTransform(LULinear(n), n),
    "leapfrog": lambda n: LeapfrogFlow(n, steps=3, step_size=0.15, hidden=16),
    "canonical_flow": lambda n: canonical_flow(n, blocks=2, hidden=16),
}
"""One small instance of every kind of layer (and a whole canonical flow), by name, for the checks that run over
all of them (compilation, the GPU)."""


def randomize_(module: torch.nn.Module, scale: float = 0.4, seed: int = 0) -> torch.nn.Module:
    """Add ``scale * N(0, 1)`` noise to every parameter, so no layer is tested at the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_(scale * noise.to(parameter.dtype))
    return module


def make_layer(factory: Callable[[int], torch.nn.Module], n: int, seed: int = 0) -> torch.nn.Module:
    """``factory(n)`` built after seeding torch with ``seed``, in float64 and eval mode, with randomized parameters."""
    manual_seed(seed)
    return randomize_(factory(n).double(), seed=seed).eval()


def sample(n: int, batch: int = 5, seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A fixed standard-normal batch of shape ``(batch, 2n)``."""
    return torch.randn(batch, 2 * n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def check_round_trip(layer, n: int) -> None:
    for batch in BATCHES:
        assert_invertible(layer, sample(n, batch), atol=TOL)


def check_symplectic(layer, n: int) -> None:
    for batch in BATCHES:
        x = sample(n, batch)
        assert_symplectic(layer, x, atol=TOL)
        assert_symplectic(layer, x, atol=TOL, inverse=True)


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
    "no_grad": check_no_grad,
    "float32": check_float32,
    "gradients": check_gradients,
    "nflows_flow": check_nflows_flow,
}


def run_check(name: str, make: Callable[[], torch.nn.Module], n: int) -> None:
    """Run the check called ``name`` on ``make()``, a float64 layer on ``(B, 2n)`` in eval mode."""
    layer = make()
    if name == "state_dict":
        check_state_dict(layer, n, make)
    else:
        CHECKS[name](layer, n)


ALL_CHECKS = [*CHECKS, "state_dict"]
STATELESS_CHECKS = [check for check in ALL_CHECKS if check not in ("gradients", "state_dict")]
"""The checks that mean something for a layer without parameters or buffers."""

BAD_INPUTS = {
    "odd last dimension": (torch.randn(3, 5), ValueError, "even last dimension"),
    "wrong n": (torch.randn(3, 6), ValueError, "2n = 4"),
    "not a batch": (torch.randn(4), ValueError, r"shape \(B, 4\)"),
    "extra dimension": (torch.randn(2, 3, 4), ValueError, r"shape \(B, 4\)"),
    "NaN": (torch.tensor([[0.0, float("nan"), 0.0, 0.0]]), ValueError, "NaN or Inf"),
    "Inf": (torch.tensor([[0.0, 0.0, float("inf"), 0.0]]), ValueError, "NaN or Inf"),
    "integer dtype": (torch.ones(3, 4, dtype=torch.int64), TypeError, "floating-point"),
}
"""Inputs every layer on ``(B, 4)`` refuses: ``(x, error type, message pattern)``."""
MISMATCHED_INPUTS = {
    "float64 into a float32 layer": (torch.randn(3, 4, dtype=torch.float64), TypeError, "dtype"),
    "another device": (torch.empty(3, 4, device="meta"), TypeError, "meta"),
}
"""Inputs a float32 CPU layer with parameters on ``(B, 4)`` refuses: its parameters fix dtype and device."""


def check_bad_input(layer, name: str, case: str, direction: str) -> None:
    """``layer`` (float32, on ``(B, 4)``) refuses input ``case`` with an error naming ``f"{name}.{direction}"``."""
    x, error, message = {**BAD_INPUTS, **MISMATCHED_INPUTS}[case]
    with pytest.raises(error, match=message) as info:
        getattr(layer, direction)(x)
    assert f"{name}.{direction}" in str(info.value)
