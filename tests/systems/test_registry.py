"""``canonflow/systems/registry.py``: the names of the catalogue and ``get_system``."""

from __future__ import annotations

import pytest

from canonflow.systems import HamiltonianSystem, available_systems, get_system


def test_registry_names() -> None:
    expected = {
        "oscillator",
        "pendulum",
        "double_well",
        "coupled_oscillator",
        "henon_heiles",
        "kepler",
        "toda",
        "calogero_moser",
        "fput",
        "harmonic_chain",
        "ring2d",
    }
    assert set(available_systems()) == expected
    for name in expected:
        system = get_system(name)
        assert isinstance(system, HamiltonianSystem)
        assert system.name == name
        assert system.separable == (name != "coupled_oscillator")
    assert get_system("kepler", d=3).n == 3


def test_unknown_system_lists_choices() -> None:
    with pytest.raises(ValueError, match="unknown system 'nope'.*harmonic_chain.*kepler"):
        get_system("nope")
