"""``canonflow/systems/henon_heiles.py``: initial conditions below the escape energy."""

from __future__ import annotations

from randomness import gen

from canonflow.phase_space import split
from canonflow.systems import HenonHeiles


def test_henon_heiles_sampler_below_escape() -> None:
    system = HenonHeiles()
    x = system.sample_initial(500, generator=gen(19))
    energy = system(x)
    assert energy.max() < system.escape_energy and energy.max() <= 0.125 + 1e-12
    assert (split(x)[0].norm(dim=-1) <= 0.3 + 1e-12).all()
