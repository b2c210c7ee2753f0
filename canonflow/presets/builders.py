"""What a preset's data describe, built: its system, its initial states, its action-angle chart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from canonflow.systems import CentreOfMassFrame, HamiltonianSystem, get_system

__all__ = ["build_chart", "build_system", "initial_states"]


def build_system(spec: Mapping[str, Any], centre_of_mass: bool = False) -> HamiltonianSystem:
    """``get_system(**spec)`` (``spec``: the registry ``name`` and constructor arguments), in its centre-of-mass
    frame if ``centre_of_mass``."""
    system = get_system(**spec)
    return CentreOfMassFrame(system) if centre_of_mass else system


def initial_states(
    law: str | Mapping[str, Any], system: HamiltonianSystem, num: int, generator: torch.Generator
) -> torch.Tensor:
    """``num`` initial states (float64) of ``system`` drawn with ``generator`` by ``law``:

    * ``"system"``: ``system.sample_initial``;
    * ``"radius:LOW:HIGH"``: a direction ``y/‖y‖``, ``y ~ U[−1, 1]²``, times a radius ``~ U[LOW, HIGH]``
      (Greydanus et al.'s sampler, one degree of freedom);
    * ``"box:HALF"``: uniform on ``[−HALF, HALF]²``;
    * ``"signs:LOW:HIGH"``: ``|x₀ᵢ| ~ U[LOW, HIGH]`` with random signs (one degree of freedom);
    * ``"toda_loops"``: :func:`canonflow.action_angle.toda_loop_orbits`;
    * a table ``{kind = "orbits", ...}``: ``system.sample_orbits(num, **rest)`` (Kepler; lists become tuples).
    """
    if isinstance(law, Mapping):
        ranges = {key: tuple(value) for key, value in law.items() if key != "kind"}
        return system.sample_orbits(num, **ranges, generator=generator)
    kind, *values = law.split(":")
    bounds = [float(value) for value in values]
    uniform = lambda *shape: torch.rand(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    if kind == "radius":
        direction = 2.0 * uniform(num, 2) - 1.0
        direction = direction / direction.norm(dim=-1, keepdim=True)
        return direction * (bounds[0] + (bounds[1] - bounds[0]) * uniform(num, 1))
    if kind == "box":
        return (2.0 * uniform(num, 2) - 1.0) * bounds[0]
    if kind == "signs":
        magnitude = bounds[0] + (bounds[1] - bounds[0]) * uniform(num, 2)
        return magnitude * torch.where(torch.rand(num, 2, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
    if kind == "toda_loops":
        from canonflow.action_angle import toda_loop_orbits

        return toda_loop_orbits(system, num, generator)
    if kind != "system":
        raise ValueError(f"initial_states: unknown law {law!r}")
    return system.sample_initial(num, generator=generator)


def build_chart(spec: Mapping[str, Any], system: HamiltonianSystem) -> Any:
    """The chart spec of ``builder(system, centre, **rest)`` for ``spec = {builder = "birkhoff" | "normal_mode",
    centre = [...] | "equilibrium", ...}`` (``circular`` pairs become tuples)."""
    from canonflow.action_angle import birkhoff_chart, normal_mode_chart

    rest = dict(spec)
    builder = {"birkhoff": birkhoff_chart, "normal_mode": normal_mode_chart}[rest.pop("builder")]
    centre = rest.pop("centre")
    if "circular" in rest:
        rest["circular"] = [tuple(pair) for pair in rest["circular"]]
    return builder(system, system.equilibrium() if centre == "equilibrium" else centre, **rest)
