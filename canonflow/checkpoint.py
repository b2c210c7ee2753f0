"""Checkpoints: weights plus the config that rebuilds the model; safe to load, atomic to write.

A model file is a dict of tensors and plain data (loadable with ``torch.load(weights_only=True)``, so a
malicious file cannot run code)::

    {"format": "canonflow", "version": 2, "kind": <registered class name>, "config": {...},
     "state_dict": {...}, "extra": {...}}

A class becomes loadable with ``canonflow.load`` by registering itself with ``register_model`` and providing
``config() -> dict`` (JSON-like constructor arguments) and ``from_config(config) -> instance``.

Version 1 files (before the one-flow reshape) still load: ``register_migration`` maps an old kind to the class
that replaced it and renames weight prefixes; tensors are reshaped to the new model's shapes when they hold the
same numbers, and base weights the old model did not have (e.g. a fixed base's zero centre) keep their initial value.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch

__all__ = [
    "CheckpointError",
    "LIBRARY_MODELS",
    "register_model",
    "register_migration",
    "atomic_write",
    "atomic_save",
    "read_checkpoint",
    "save_model",
    "load",
]

FORMAT = "canonflow"
VERSION = 2
LIBRARY_MODELS = (
    "canonflow.flow",
    "canonflow.action_angle.model",
    "canonflow.sampling.model",
    "canonflow.hamiltonian_learning.model",
)
"""The modules whose models register themselves; :func:`load` imports them (``import canonflow`` is lazy)."""
_REGISTRY: dict[str, Callable[[dict[str, Any]], torch.nn.Module]] = {}
_MIGRATIONS: dict[str, tuple[str, dict[str, str]]] = {}
T = TypeVar("T", bound=type)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model asked of it."""


def register_model(cls: T) -> T:
    """Class decorator: make ``cls`` loadable by ``canonflow.load`` through ``cls.from_config``."""
    _REGISTRY[cls.__name__] = cls.from_config
    return cls


def register_migration(old_kind: str, new_kind: str, renames: dict[str, str] | None = None) -> None:
    """Load version-1 files of ``old_kind`` as ``new_kind``, renaming weight-name prefixes by ``renames``."""
    _MIGRATIONS[old_kind] = (new_kind, dict(renames or {}))


def _migrate(state: dict[str, Any], template: dict[str, torch.Tensor], renames: dict[str, str]) -> dict[str, Any]:
    """A version-1 ``state`` in the names and shapes of ``template`` (the new model's ``state_dict``)."""
    renamed = {}
    for key, value in state.items():
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    missing = [key for key in template if key not in renamed and not key.startswith("_distribution.")]
    if missing:
        raise CheckpointError(f"version-1 weights lack {missing[:5]}")
    migrated = {}
    for key, default in template.items():
        value = renamed.get(key, default)
        if isinstance(value, torch.Tensor) and value.shape != default.shape and value.numel() == default.numel():
            value = value.reshape(default.shape)
        migrated[key] = value
    unused = sorted(set(renamed) - set(template))
    if any(not key.endswith("_anchor") for key in unused):
        raise CheckpointError(f"version-1 weights {unused[:5]} have no place in the current model")
    return migrated


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(stream)`` on a temporary file in ``path``'s directory, flush it to disk, then rename it to
    ``path``: a crash never leaves a torn file, and readers see the old or the new file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` with :func:`atomic_write`."""
    atomic_write(path, lambda stream: torch.save(obj, stream))


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``torch.load(weights_only=True)``, turning every failure into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for truncated, corrupt or unsafe files
        raise CheckpointError(
            f"{path} is not a readable canonflow checkpoint (corrupted, truncated, or it contains code that "
            f"weights_only loading refuses): {type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a canonflow checkpoint")
    return payload


def save_model(path: str | os.PathLike, model: torch.nn.Module, extra: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights and config (from ``model.config()``) atomically to ``path``."""
    kind = type(model).__name__
    if kind not in _REGISTRY:
        raise CheckpointError(f"{kind} is not registered with canonflow.checkpoint.register_model")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": model.config(),
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    atomic_save(payload, path)


def load(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> torch.nn.Module:
    """Rebuild a saved canonflow model from its config, in the dtype of its saved weights, and load them (no
    pickled code is run)."""
    payload = read_checkpoint(path, map_location)
    for module in LIBRARY_MODELS:
        importlib.import_module(module)
    kind = payload.get("kind")
    renames = None
    if payload.get("version") == 1:
        kind, renames = _MIGRATIONS.get(kind, (kind, {}))
    if kind not in _REGISTRY:
        raise CheckpointError(f"{path} holds a {kind!r} model; loadable kinds are {sorted(_REGISTRY)}")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not isinstance(payload.get("config"), dict):
        raise CheckpointError(f"{path} is a canonflow {kind} file without its config and weights")
    try:
        model = _REGISTRY[kind](payload["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its stored config does not build a {kind}: {error}") from error
    floating = [value for value in state.values() if isinstance(value, torch.Tensor) and value.is_floating_point()]
    if floating:
        model = model.to(floating[0].dtype)  # the dtype it was saved in, which the config may not record
    try:
        if renames is not None:
            state = _migrate(state, model.state_dict(), renames)
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit a {kind} built from its stored config: {str(error).splitlines()[0][:200]}"
        ) from error
    return model
