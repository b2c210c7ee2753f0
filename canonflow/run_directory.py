"""The run directory ``OUT`` of a command and everything written to it, owned by one :class:`Run`.

``OUT/config.toml`` (the resolved config, written before the run; ``--resume`` reads it back),
``OUT/metrics.json`` (written after the run, schema :data:`METRICS_SCHEMA_VERSION`: ``schema_version``,
``command``, ``argv``, ``canonflow_version``, ``torch_version``, ``python_version``, ``platform``, ``seed``,
``device``, ``dtype``, ``config``, ``resumed``, ``world_size``, ``started_at`` (ISO 8601, UTC), ``wall_seconds``
and ``results``; non-finite numbers written as ``null``), ``OUT/figures/``, models (``model.pt``) and training
states (``training.pt``, which ``--resume`` continues from). In a data-parallel run only rank 0 writes.

Safety (:meth:`Run.claim`, before the first byte of a run is written): ``OUT`` is locked by an advisory lock
file (:data:`LOCK_FILE`, the owner's pid, host and start time; removed when the run ends, and a lock left by a
process that no longer runs on this host is reported and replaced); a fresh run into a non-empty ``OUT`` is
refused unless it overwrites (which deletes the previous run's files, :data:`RUN_FILES`, and only those); a
resumed run must ask for the config it resumes, except the keys that may change on resume. A refused run leaves
``OUT`` as it was. Every file is written atomically (:func:`canonflow.checkpoint.atomic_write`).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import shutil
import socket
import sys
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import torch

import canonflow
from canonflow.checkpoint import atomic_write, save_model
from canonflow.distributed import DistributedContext

__all__ = ["LOCK_FILE", "METRICS_SCHEMA_VERSION", "RUN_FILES", "Run", "RunDirectoryError"]

METRICS_SCHEMA_VERSION = 1
LOCK_FILE = ".canonflow.lock"
RUN_FILES = ("config.toml", "metrics.json", "figures", "*.pt")
"""What a run writes in ``OUT`` (glob patterns); overwriting a run deletes these and nothing else."""
log = logging.getLogger(__name__)


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked: busy, holding another run, or not the run being resumed."""


@dataclass
class Run:
    """One run of a command: its directory ``out`` (``None``: nothing is written), whether it shows progress,
    resumes from ``out``'s training states, and this process's place in a data-parallel run (``distributed``).

    A subcommand's ``run(config, run)`` asks it for the device, the training options (with the checkpoint in
    ``out``), and writes through it (models, figures) when :attr:`writes`.
    """

    out: Path | None = None
    progress: bool = True
    resume: bool = False
    distributed: DistributedContext | None = None
    overwrite: bool = False
    _lock: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.out is not None and str(self.out) == "":
            raise RunDirectoryError("Run: the run directory is an empty path; name a directory (e.g. --out runs/a)")
        self.out = None if self.out is None else Path(self.out)
        if self.resume and self.overwrite:
            raise RunDirectoryError("Run: resume and overwrite exclude each other; choose one")

    def claim(self, command: str, config: Mapping[str, Any], may_change: Collection[str] = ()) -> None:
        """Lock ``OUT`` for this run and check that the run may use it, before anything else is written.

        Refused (:class:`RunDirectoryError`, ``OUT`` left as it was): ``OUT`` is locked by a running process;
        a fresh run into a non-empty ``OUT`` that does not overwrite; a resumed run whose ``config`` differs
        from the stored ``OUT/config.toml`` in a key outside ``may_change`` (the message names each key with
        its stored and requested values), or that finds a training state without its ``config.toml``. An
        overwriting run then deletes the previous run's :data:`RUN_FILES`. ``command`` names the run in
        messages. Only the process that :attr:`writes` claims; :meth:`release` ends the claim.
        """
        if not self.writes:
            return
        created = not self.out.exists()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunDirectoryError(f"{command}: cannot create the run directory {self.out}: {error}") from error
        try:
            self._acquire(command)
            self._check(command, config, may_change)
        except BaseException:
            self.release()
            if created:
                self.out.rmdir()
            raise
        if self.overwrite:
            for path in self.run_files():
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def release(self) -> None:
        """Remove this run's lock on ``OUT`` (nothing when it holds none)."""
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
            self._lock = None

    def run_files(self) -> list[Path]:
        """The files and folders of a run in ``OUT`` (:data:`RUN_FILES`), sorted."""
        return sorted({path for pattern in RUN_FILES for path in self.out.glob(pattern)})

    def stored_config(self) -> dict[str, Any] | None:
        """The table of ``OUT/config.toml`` (``None`` when there is none)."""
        path = self.config_file()
        if path is None:
            return None
        try:
            return tomllib.loads(path.read_text())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise RunDirectoryError(f"{path} is not a readable config.toml: {error}") from error

    def _acquire(self, command: str) -> None:
        path = self.out / LOCK_FILE
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _now(), "command": command}
        for _ in range(3):
            temporary = self.out / f"{LOCK_FILE}.{owner['pid']}"
            temporary.write_text(json.dumps(owner))
            try:
                os.link(temporary, path)  # atomic: fails when a lock exists, and the lock is never half written
                self._lock = path
                return
            except FileExistsError:
                holder = _lock_owner(path)
            finally:
                temporary.unlink(missing_ok=True)
            if holder is not None and (holder.get("host") != owner["host"] or _running(holder.get("pid"))):
                raise RunDirectoryError(
                    f"{command}: {self.out} is in use by {holder.get('command', 'a run')} (process "
                    f"{holder.get('pid')} on {holder.get('host')}, started {holder.get('started_at')}); wait for "
                    f"it to end or choose another --out"
                )
            if _lock_owner(path) == holder:  # still the stale one, not a lock another run has just taken
                log.warning("%s: removing the stale lock of %s, which no longer runs", self.out, holder or "a run")
                path.unlink(missing_ok=True)
        raise RunDirectoryError(f"{command}: could not lock {self.out}; another run keeps claiming it")

    def _check(self, command: str, config: Mapping[str, Any], may_change: Collection[str]) -> None:
        if not self.resume:
            present = sorted(path.name for path in self.out.iterdir() if path.name != LOCK_FILE)
            if present and not self.overwrite:
                shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
                raise RunDirectoryError(
                    f"{command}: {self.out} is not empty ({shown}); continue its run with --resume, replace it "
                    f"with --overwrite, or choose another --out"
                )
            return
        stored = self.stored_config()
        if stored is None:
            if self.has_training_state():
                raise RunDirectoryError(
                    f"{command}: {self.out} holds a training state but no config.toml to check it against"
                )
            return
        requested = {key: value for key, value in config.items() if value is not None}
        differing = [
            f"{key}: stored {stored.get(key)!r}, requested {requested.get(key)!r}"
            for key in sorted(set(stored) | set(requested))
            if key not in may_change and stored.get(key) != requested.get(key)
        ]
        if differing:
            raise RunDirectoryError(
                f"{command}: --resume asks for another run than the one in {self.out} ({'; '.join(differing)}); "
                f"resume it as it was, or start a new run in another --out"
            )

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0 of a data-parallel run, or the only process."""
        return self.distributed is None or self.distributed.is_main

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: there is a run directory and this is rank 0."""
        return self.out is not None and self.is_main

    def figures(self) -> Path:
        """``OUT/figures``, created if needed."""
        path = self.out / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def device(self, config: Mapping[str, Any]) -> torch.device:
        """The device to train on: this rank's device in a data-parallel run, else ``config["device"]``."""
        return self.distributed.device if self.distributed is not None else torch.device(config["device"])

    def training_options(
        self,
        config: Mapping[str, Any],
        preset: Mapping[str, Any],
        description: str,
        checkpoint: str = "training.pt",
        evaluations: int | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments of :class:`canonflow.training.TrainConfig`: ``preset``, with ``steps`` and
        ``time_limit`` from ``config`` where set, ``seed``, ``checkpoint_every`` and ``compile`` from ``config``, and
        the checkpoint ``OUT/checkpoint`` (none without ``out``) that a resumed run continues from.
        ``evaluations``: validate this many times along the run (``eval_every = steps // evaluations``)."""
        settings = dict(preset)
        for key in ("steps", "time_limit"):
            if config.get(key) is not None:
                settings[key] = config[key]
        settings.update(seed=config["seed"], description=description, progress=self.progress, resume=self.resume)
        if config.get("compile"):
            settings["compile"] = True
        if evaluations is not None:
            settings["eval_every"] = max(1, settings["steps"] // evaluations)
        if self.out is not None:
            settings.update(checkpoint=str(self.out / checkpoint), checkpoint_every=config["checkpoint_every"])
        return settings

    def save_model(self, model: torch.nn.Module, extra: Mapping[str, Any], name: str = "model.pt") -> None:
        """Write ``model`` to ``OUT/name`` with ``extra`` (the command, what it was trained on, the config)."""
        save_model(self.out / name, model, extra=dict(extra))

    def config_file(self) -> Path | None:
        """``OUT/config.toml`` if it exists (what ``--resume`` reads when no ``--config`` is given)."""
        path = None if self.out is None else self.out / "config.toml"
        return path if path is not None and path.is_file() else None

    def has_training_state(self) -> bool:
        """Whether ``OUT`` holds a training state (``training.pt`` or ``<flow>_training.pt``)."""
        return self.out is not None and any(self.out.glob("*training.pt"))

    def write_config(self, command: str, config: Mapping[str, Any]) -> None:
        """Write ``OUT/config.toml`` (keys whose value is ``None``, "the preset's", are left out)."""
        table = {key: value for key, value in config.items() if value is not None}
        header = f"# resolved config of a {command} run; use it again with --config\n"
        atomic_write(self.out / "config.toml", lambda stream: stream.write((header + tomli_w.dumps(table)).encode()))

    def write_metrics(
        self,
        command: str,
        config: Mapping[str, Any],
        results: Mapping[str, Any],
        *,
        started: float,
        seconds: float,
        argv: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Write ``OUT/metrics.json`` in the schema of this module's docstring and return what was written."""
        metrics = _plain(
            {
                "schema_version": METRICS_SCHEMA_VERSION,
                "command": command,
                "argv": list(sys.argv if argv is None else argv),
                "canonflow_version": canonflow.__version__,
                "torch_version": torch.__version__,
                "python_version": platform.python_version(),
                "platform": platform.platform(),
                "seed": config.get("seed"),
                "device": config.get("device"),
                "dtype": config.get("dtype"),
                "config": dict(config),
                "resumed": self.resume,
                "world_size": 1 if self.distributed is None else self.distributed.world_size,
                "started_at": _now(started),
                "wall_seconds": seconds,
                "results": results,
            }
        )
        text = json.dumps(metrics, indent=2) + "\n"
        atomic_write(self.out / "metrics.json", lambda stream: stream.write(text.encode()))
        return metrics


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _now(seconds: float | None = None) -> str:
    """The time ``seconds`` since the epoch (default: now) in ISO 8601, UTC."""
    moment = (
        datetime.datetime.now(datetime.UTC)
        if seconds is None
        else datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    )
    return moment.isoformat(timespec="seconds")


def _lock_owner(path: Path) -> dict[str, Any] | None:
    """The owner recorded in the lock file ``path`` (``None``: gone or unreadable)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _running(pid: Any) -> bool:
    """Whether a process ``pid`` runs on this host."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
