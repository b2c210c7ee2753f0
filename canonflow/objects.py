"""The user's own objects named in a config or on the command line: ``package.module:name`` or ``path/to/file.py:name``.

This is how ``canonflow free-energy --system mymodule:system`` or ``canonflow sample --target model.py:target``
find a :class:`~canonflow.systems.HamiltonianSystem` or :class:`~canonflow.sampling.Target` the catalogue does not
ship. Imports neither torch nor the library.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["import_object", "named_or_imported"]


def import_object(spec: str, kind: type, who: str) -> Any:
    """The object named by ``spec``: ``package.module:name`` (importable) or ``path/to/file.py:name``, imported
    once per process; it must be an instance of ``kind``. Raises ``ValueError`` naming ``who`` and what went
    wrong."""
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute.isidentifier():
        raise ValueError(f"{who}: expected 'package.module:name' or 'path/to/file.py:name', got {spec!r}")
    if module_name.endswith(".py") and not Path(module_name).is_file():
        raise ValueError(f"{who}: no file {module_name}")
    try:
        module = _import_module(module_name)
    except Exception as error:  # the user's module may raise anything while it is imported
        raise ValueError(f"{who}: importing {module_name} failed: {type(error).__name__}: {error}") from error
    value = getattr(module, attribute, None)
    if not isinstance(value, kind):
        got = "nothing" if value is None else type(value).__name__
        raise ValueError(f"{who}: expected {spec} to be a {kind.__name__}, got {got}")
    return value


def named_or_imported(spec: str, kind: type, who: str, catalogue: Callable[[str], Any]) -> Any:
    """``catalogue(spec)`` for a name of the catalogue, or the user's object for ``package.module:name`` or
    ``path/to/file.py:name`` (:func:`import_object`)."""
    return import_object(spec, kind, who) if ":" in spec else catalogue(spec)


@functools.cache
def _import_module(name: str) -> ModuleType:
    """The module ``name``, or the file ``name`` (ending in ``.py``) run as a module."""
    if not name.endswith(".py"):
        return importlib.import_module(name)
    found = importlib.util.spec_from_file_location(Path(name).stem, name)
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module
