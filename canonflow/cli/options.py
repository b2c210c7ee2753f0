"""Options of the subcommands and how a config is resolved from them: defaults < ``--config`` file < flags.

An :class:`Option` is one setting: TOML key ``name`` in a config file, flag ``--name`` (``_`` written ``-``) on
the command line. :func:`resolve_config` checks types, choices and values and raises :class:`ConfigError`
(exit code 2) naming the valid keys or choices. Options are data: this module imports neither torch nor the
library, so the parser (and ``--help``) is built without them; checks and object types are named, and imported
when a config is resolved.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canonflow.objects import import_object

__all__ = [
    "COMMON_OPTIONS",
    "TRAINING_OPTIONS",
    "ConfigError",
    "Option",
    "add_arguments",
    "add_options",
    "complete",
    "read_config_file",
    "resolve_config",
]


class ConfigError(ValueError):
    """A config that cannot be used: an unknown key, a value of the wrong type or outside its choices."""


@dataclass(frozen=True)
class Option:
    """One setting of a subcommand: TOML key ``name``, command-line flag ``--name`` (``_`` written ``-``).

    ``kind`` is ``int``, ``float``, ``str`` or ``bool`` (taken from ``default`` when that is not ``None``);
    ``None`` as default means "the preset's value" and is described by ``default_text`` in ``--help``.
    ``check(value, name, who)`` raises ``ValueError`` for an invalid value; a string names a check of
    :mod:`canonflow.validation` (``"positive_int"``: ``check_positive_int``), imported when it is first used.
    A ``positional`` option is an argument (as ``CHECKPOINT`` of ``evaluate``), required on the command line.
    ``on_resume``: the option may differ from the stored config when a run is resumed (budgets, evaluation
    sizes, where it runs); any other difference is refused. ``objects``: besides its choices the option takes
    the user's own object of the type it names (``"package.module:Type"``, e.g.
    ``"canonflow.systems:HamiltonianSystem"``, imported when it is first used), given as ``package.module:name``
    or ``path/to/file.py:name`` (:func:`canonflow.objects.import_object`).
    """

    name: str
    default: Any
    help: str
    kind: type | None = None
    choices: Sequence[Any] | None = None
    default_text: str | None = None
    check: str | Callable[[Any, str, str], object] | None = None
    positional: bool = False
    on_resume: bool = False
    objects: str | None = None

    @property
    def type(self) -> type:
        """The Python type of the option's values."""
        return self.kind if self.kind is not None else type(self.default)

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")

    @property
    def objects_name(self) -> str | None:
        """The name of the type of the user's objects the option takes (``None``: only its choices)."""
        return None if self.objects is None else self.objects.rpartition(":")[2]

    def checked(self, value: Any, who: str) -> None:
        """Run the option's check (if any) on ``value``; ``ValueError`` names ``who`` and the option."""
        check = self.check
        if isinstance(check, str):
            check = getattr(importlib.import_module("canonflow.validation"), f"check_{check}")
        if check is not None:
            check(value, self.name, who)

    def object_type(self) -> type:
        """The type of the user's objects the option takes (imported)."""
        module, _, name = self.objects.rpartition(":")
        return getattr(importlib.import_module(module), name)


COMMON_OPTIONS = (
    Option("seed", 0, "random seed of data, initialization and minibatches", check="seed"),
    Option("device", "cpu", "torch device ('cpu', 'cuda', 'cuda:N')", check="device", on_resume=True),
    Option("dtype", "float64", "floating dtype of the model", choices=("float32", "float64")),
    Option("quick", False, "a smoke run of a few seconds (small data, few steps)"),
    Option("threads", None, "torch CPU threads", kind=int, default_text="torch's default", check="positive_int",
           on_resume=True),
)  # fmt: skip
"""Options every subcommand takes."""

TRAINING_OPTIONS = (
    Option("steps", None, "optimizer steps", kind=int, default_text="the preset's", check="positive_int",
           on_resume=True),
    Option("time_limit", None, "training time limit in seconds", kind=float, default_text="the preset's",
           check="positive_float", on_resume=True),
    Option("checkpoint_every", 500, "write OUT/training.pt every this many steps", check="positive_int",
           on_resume=True),
    Option("compile", False, "compile the model with torch.compile (canonflow.compile): the first steps pay seconds "
           "to tens of seconds of compilation, long runs of small flows gain (docs/performance.md)", on_resume=True),
)  # fmt: skip
"""Options of every subcommand that trains (``steps`` and ``time_limit`` override the preset when given)."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The table of a TOML config file (``ConfigError`` when it is missing or not valid TOML)."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError as error:
        raise ConfigError(f"no config file at {path}") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a valid TOML text file: {error}") from error


def _checked(option: Option, value: Any, source: str) -> Any:
    expected = option.type
    if value is None and option.default is None:
        return None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {option.name} must be a {expected.__name__}, got {value!r}")
    if option.objects is not None and isinstance(value, str) and ":" in value:
        try:
            import_object(value, option.object_type(), f"{source}: {option.name}")
        except ValueError as error:
            raise ConfigError(str(error)) from error
    elif option.choices is not None and value not in option.choices:
        close = difflib.get_close_matches(str(value), list(map(str, option.choices)), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{source}: invalid {option.name} {value!r}; {hint}choose one of {', '.join(option.choices)}")
    try:
        option.checked(value, source)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from error
    return value


def resolve_config(
    options: Sequence[Option],
    file_values: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    source: str = "config",
) -> dict[str, Any]:
    """The config: each option's default, replaced by ``file_values`` (a TOML table), replaced by ``flags``.

    Unknown keys and invalid values raise :class:`ConfigError` naming the valid keys or choices.
    """
    known = {option.name: option for option in options}
    for values, where in ((file_values or {}, source), (flags or {}, "command line")):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(known)}")
    config = {}
    for name, option in known.items():
        if flags and name in flags and flags[name] is not None:
            config[name] = _checked(option, flags[name], "command line")
        elif file_values and name in file_values:
            config[name] = _checked(option, file_values[name], source)
        elif option.default is None:
            config[name] = None
        else:
            config[name] = _checked(option, option.default, "default")
    return config


def complete(options: Sequence[Option], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config`` checked and completed with the defaults (what a subcommand's ``run`` does first)."""
    return resolve_config(options, config, source="config")


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Add ``options`` to ``parser``. Defaults are ``SUPPRESS``ed: only flags actually given reach the
    namespace, so they override the config file and nothing else does. Choices are checked with the config
    (:func:`resolve_config`), which suggests the closest one."""
    for option in options:
        shown = option.default_text if option.default is None else repr(option.default)
        own = "" if option.objects is None else f", or your own {option.objects_name} as MODULE:NAME or FILE.py:NAME"
        text = f"{option.help}{own} (default: {shown})"
        if option.positional:
            parser.add_argument(option.name, type=option.type, help=option.help)
        elif option.type is bool:
            parser.add_argument(
                option.flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
        else:
            metavar = "{" + ",".join(map(str, option.choices)) + "}" if option.choices else option.name.upper()
            parser.add_argument(
                option.flag, type=option.type, default=argparse.SUPPRESS, metavar=metavar,
                help=text,
            )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser, command: Any) -> None:
    """Add the options of ``command`` (a :class:`~canonflow.cli.catalog.Command`: its ``options``, ``resumable``
    and ``distributed``) and the run flags (``--config``, ``--out``, ``--overwrite``, ``--resume``, ``--nproc``,
    ``--quiet``) to ``parser``."""
    add_options(parser, command.options)
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="config file; flags override it")
    parser.add_argument("--out", type=_directory, metavar="DIR", help="run directory (default: none, nothing written)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in a non-empty OUT (its files only)")
    if command.resumable:
        parser.add_argument(
            "--resume", action="store_true", help="continue from OUT/training.pt (with OUT/config.toml unless --config)"
        )
    if command.distributed:
        parser.add_argument(
            "--nproc",
            type=_process_count,
            default=1,
            metavar="N",
            help="data-parallel processes on this machine, launched with torchrun (default: 1)",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")


def _directory(text: str) -> Path:
    """``--out``'s value: a non-empty path."""
    if not text.strip():
        raise argparse.ArgumentTypeError("--out needs a directory, got an empty path")
    return Path(text)


def _process_count(text: str) -> int:
    """``--nproc``'s value: a positive int (argparse reports anything else as a usage error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--nproc must be a positive number of processes, got {text}")
    return value
