"""``canonflow/sampling/targets.py``: the exact samplers of every target and the registry."""

from __future__ import annotations

import pytest
from randomness import gen

from canonflow.sampling import TARGETS, get_target
from sampling.common import assert_moments, checked_coordinates


@pytest.mark.statistical
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_exact_samplers_match_exact_moments(name):
    target = get_target(name)
    draws = target.sample(20000, gen(10))
    assert draws.shape == (20000, target.dim)
    assert_moments(*checked_coordinates(name, draws[:, None, :], target))
    assert target.potential(draws[:5]).shape == (5,)


def test_unknown_target_lists_names():
    with pytest.raises(KeyError, match="banana"):
        get_target("nope")
