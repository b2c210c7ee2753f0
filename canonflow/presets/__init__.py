"""Presets as data: the settings of every reference run, stored as TOML files shipped inside the package.

One file per command, ``canonflow/presets/<command>.toml``, holds one table per preset name and an optional
``[defaults]`` table that lies under every preset. A table's ``quick`` sub-table holds what ``--quick`` changes.
:func:`load_preset` reads a preset as a :class:`Preset`, whose :meth:`Preset.settings` merges (recursively, table
into table) ``defaults``, the preset, and with ``quick=True`` ``defaults.quick`` and the preset's ``quick``;
:mod:`canonflow.presets.builders` builds what the data describe (systems, initial states, charts). Reading
presets imports neither torch nor the library:

>>> preset = load_preset("density", "ring2d")
>>> preset.settings()["steps"], preset.settings(quick=True)["steps"]
(4000, 100)
>>> sorted(presets("free-energy"))
['double_well', 'generic', 'harmonic_chain', 'ring2d']
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "COMMANDS",
    "GENERIC",
    "Preset",
    "load_preset",
    "merge",
    "presets",
]

COMMANDS = ("action-angle", "demo", "density", "free-energy", "learn-hamiltonian", "sample")
"""The commands with presets (a file ``<command>.toml`` each)."""
GENERIC = "generic"
"""The preset a command uses for the user's own object (given as ``MODULE:NAME`` instead of a preset name)."""


def merge(*tables: Mapping[str, Any]) -> dict[str, Any]:
    """``tables`` merged left to right: a later value replaces an earlier one, except that a table merged into a
    table is merged recursively. The inputs are not modified."""
    merged: dict[str, Any] = {}
    for table in tables:
        for key, value in table.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = merge(value) if isinstance(value, Mapping) else value
    return merged


@dataclass(frozen=True)
class Preset:
    """A named preset of a command: ``values`` (the defaults merged with the preset's own, without ``quick``)
    and ``quick`` (what ``--quick`` changes: ``defaults.quick`` merged with the preset's ``quick``)."""

    command: str
    name: str
    values: Mapping[str, Any]
    quick: Mapping[str, Any]

    def settings(self, quick: bool = False) -> dict[str, Any]:
        """The preset's settings, with the ``quick`` changes merged over them when ``quick``."""
        return merge(self.values, self.quick) if quick else merge(self.values)


@functools.cache
def _read(command: str) -> dict[str, Any]:
    if command not in COMMANDS:
        raise ValueError(f"presets: no presets for command {command!r}; commands with presets: {', '.join(COMMANDS)}")
    with resources.files(__name__).joinpath(f"{command}.toml").open("rb") as stream:
        return tomllib.load(stream)


def presets(command: str) -> dict[str, Preset]:
    """Every preset of ``command`` (one of :data:`COMMANDS`), by name, in the file's order."""
    table = _read(command)
    defaults = dict(table.get("defaults", {}))
    default_quick = defaults.pop("quick", {})
    found = {}
    for name, own in table.items():
        if name == "defaults":
            continue
        own = dict(own)
        quick = own.pop("quick", {})
        found[name] = Preset(command, name, merge(defaults, own), merge(default_quick, quick))
    return found


def load_preset(command: str, name: str) -> Preset:
    """The preset ``name`` of ``command``, or its :data:`GENERIC` preset when ``name`` is the user's own object
    (``MODULE:NAME`` or ``FILE.py:NAME``); ``ValueError`` naming the valid names when there is none."""
    found = presets(command)
    name = GENERIC if ":" in name else name
    if name not in found:
        raise ValueError(f"load_preset: {command} has no preset {name!r}; choose one of {', '.join(sorted(found))}")
    return found[name]
