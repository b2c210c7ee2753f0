"""``SymplecticTransform``: what the base class gives every canonical layer (logabsdet, input checks, dispatch)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import canonflow
from canonflow.transforms import SymplecticTransform


class Translation(SymplecticTransform):
    """``x -> x + a``: the smallest canonical layer with state; ``a`` is a parameter, or a buffer if ``buffer``."""

    def __init__(self, n: int, buffer: bool = False) -> None:
        super().__init__(n)
        if buffer:
            self.register_buffer("shift", torch.ones(2 * n))
        else:
            self.shift = nn.Parameter(torch.ones(2 * n))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift

    def inverse_map(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.shift


class Unimplemented(SymplecticTransform):
    """A subclass that forgot ``forward_map`` and ``inverse_map``."""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logabsdet_is_zeros_of_shape_batch_in_the_inputs_dtype(dtype: torch.dtype) -> None:
    layer = Translation(2).to(dtype)
    x = torch.randn(7, 4, dtype=dtype)
    for direction, expected in ((layer.forward, x + 1), (layer.inverse, x - 1)):
        y, logabsdet = direction(x)
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
        assert logabsdet.shape == (7,) and logabsdet.dtype == dtype and logabsdet.device == x.device
        assert torch.equal(logabsdet, torch.zeros(7, dtype=dtype))


def test_a_subclass_without_the_maps_raises_not_implemented() -> None:
    layer = Unimplemented(1)
    for direction in (layer.forward, layer.inverse):
        with pytest.raises(NotImplementedError):
            direction(torch.zeros(2, 2))


@pytest.mark.parametrize("n", [0, -1, 2.0, True, "2"])
def test_n_must_be_a_positive_int_and_the_error_names_the_subclass(n: object) -> None:
    with pytest.raises((ValueError, TypeError), match="Translation: expected n to be a positive int"):
        Translation(n)


def test_a_floating_buffer_fixes_the_dtype_when_there_are_no_parameters() -> None:
    layer = Translation(1, buffer=True)
    assert not list(layer.parameters())
    with pytest.raises(TypeError, match="Translation.forward: input dtype torch.float64"):
        layer(torch.zeros(2, 2, dtype=torch.float64))
    torch.testing.assert_close(layer.double()(torch.zeros(2, 2, dtype=torch.float64))[0], torch.ones(2, 2).double())


def test_an_integer_buffer_does_not_fix_the_dtype() -> None:
    class Counted(SymplecticTransform):
        def __init__(self) -> None:
            super().__init__(1)
            self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

        def forward_map(self, x: torch.Tensor) -> torch.Tensor:
            return x

    for dtype in (torch.float32, torch.float64):
        assert Counted()(torch.zeros(2, 2, dtype=dtype))[0].dtype == dtype


def test_input_that_is_not_a_tensor_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"Translation.inverse: expected a torch.Tensor of shape \(B, 4\)"):
        Translation(2).inverse([[0.0, 0.0, 0.0, 0.0]])


def test_validation_can_be_switched_off() -> None:
    layer = Translation(1)
    x = torch.tensor([[float("nan"), 0.0]])
    with canonflow.validation(False):
        assert not canonflow.validation_enabled()
        assert torch.isnan(layer(x)[0]).any()
    assert canonflow.validation_enabled()
    with pytest.raises(ValueError, match="NaN"):
        layer(x)
