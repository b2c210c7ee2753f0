"""Samplers of single orbit families, for benchmarks whose phase-space region would mix families.

One smooth chart is an action-angle map of one family of invariant tori only: where a region holds several
families (loop and box orbits, separated by a separatrix), a single learned map has to fail on some of them.
"""

from __future__ import annotations

import torch

from canonflow.action_angle.charts import make_chart, normal_mode_chart
from canonflow.data import trajectories
from canonflow.phase_space import split
from canonflow.systems import CentreOfMassFrame, Toda
from canonflow.validation import check_positive_int

__all__ = ["toda_loop_orbits"]


def toda_loop_orbits(
    system: CentreOfMassFrame,
    num: int,
    generator: torch.Generator | None = None,
    sense: int = 1,
    horizon: float = 60.0,
    samples: int = 600,
) -> torch.Tensor:
    """``num`` initial states ``(num, 4)`` of loop orbits of one sense of the periodic three-particle Toda lattice
    in its centre-of-mass frame (``CentreOfMassFrame(Toda(3, periodic=True))``).

    Candidates are drawn with ``system.sample_initial`` (``q, p ~ N(0, 0.5²)`` on the lattice, energies up to
    several units above the minimum ``H = 3``) in rounds of ``4 num`` from ``generator``, integrated to ``horizon``
    (``samples`` time points), and kept in drawing order when the normal-mode angular momentum
    ``L = I₊ − I₋`` (the actions of the circular polarizations of :func:`~canonflow.action_angle.charts.
    normal_mode_chart` at the origin, ``circular=[(0, 1)]``) has the sign of ``sense`` (``+1`` or ``−1``) at every
    sample. Those are the loop orbits of that sense; about a third of the draws are loops of each sense, and the
    remaining third (``L`` changes sign: box, librating orbits) belongs to another family, which no chart in the
    loops' winding class can cover. A longer ``horizon`` rejects a few more near-separatrix orbits.
    """
    who = "toda_loop_orbits"
    inner = getattr(system, "system", None)
    if not (isinstance(system, CentreOfMassFrame) and isinstance(inner, Toda) and inner.N == 3 and inner.periodic):
        raise ValueError(f"{who}: expected CentreOfMassFrame(Toda(3, periodic=True)), got {system!r}")
    check_positive_int(num, "num", who)
    check_positive_int(samples, "samples", who)
    if sense not in (1, -1):
        raise ValueError(f"{who}: sense must be +1 or -1, got {sense!r}")
    if not horizon > 0:
        raise ValueError(f"{who}: horizon must be positive, got {horizon!r}")
    chart = make_chart(normal_mode_chart(system, [0.0] * 4, circular=[(0, 1)]))
    kept: list[torch.Tensor] = []
    count = 0
    while count < num:
        candidates = system.sample_initial(4 * num, generator=generator)
        states = trajectories(system, len(candidates), (float(horizon), samples), initial=candidates).states
        q, p = split(chart(states.reshape(-1, 4))[0].reshape(states.shape))
        actions = 0.5 * (q * q + p * p)
        momentum = sense * (actions[..., 0] - actions[..., 1])
        loops = candidates[momentum.min(dim=1).values > 0]
        kept.append(loops)
        count += len(loops)
    return torch.cat(kept)[:num]
