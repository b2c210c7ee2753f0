"""The shared integer check that constructors use for counts such as the number of Householder reflections.

Each layer's refusal of bad input and bad constructor arguments is tested beside the layer, in ``tests/transforms``
and ``tests/nn``, through the shared contract of ``tests/layer_contract.py``.
"""

from __future__ import annotations

import pytest

from canonflow.validation import check_non_negative_int


@pytest.mark.parametrize("value", [-1, True, 2.0, "3", None])
def test_check_non_negative_int_refuses_what_is_not_an_int_at_least_zero(value: object) -> None:
    with pytest.raises(ValueError, match="Layer: expected width to be a non-negative int"):
        check_non_negative_int(value, "width", "Layer")


@pytest.mark.parametrize("value", [0, 1, 7])
def test_check_non_negative_int_returns_an_int_at_least_zero(value: int) -> None:
    assert check_non_negative_int(value, "width", "Layer") == value
