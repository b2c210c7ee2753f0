"""Options of the subcommands and how a config is resolved from them: defaults < ``--config`` file < flags.

An :class:`Option` is one setting: TOML key ``name`` in a config file, flag ``--name`` (``_`` written ``-``) on
the command line. :func:`resolve_config` checks types, choices and values and raises :class:`ConfigError`
(exit code 2) naming the valid keys or choices.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib
import importlib.util
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from canonflow.validation import check_device, check_positive_float, check_positive_int, check_seed

__all__ = [
    "COMMON_OPTIONS",
    "TRAINING_OPTIONS",
    "ConfigError",
    "Option",
    "add_options",
    "complete",
    "import_object",
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
    ``check(value, name, who)`` (a :mod:`canonflow.validation` check) raises ``ValueError`` for an invalid value.
    A ``positional`` option is an argument (as ``CHECKPOINT`` of ``evaluate``), required on the command line.
    ``on_resume``: the option may differ from the stored config when a run is resumed (budgets, evaluation
    sizes, where it runs); any other difference is refused. ``objects``: besides its choices the option takes
    the user's own object of this type (e.g. ``"HamiltonianSystem"``), named ``package.module:name`` or
    ``path/to/file.py:name`` (:func:`import_object`).
    """

    name: str
    default: Any
    help: str
    kind: type | None = None
    choices: Sequence[Any] | None = None
    default_text: str | None = None
    check: Callable[[Any, str, str], object] | None = None
    positional: bool = False
    on_resume: bool = False
    objects: type | None = None

    @property
    def type(self) -> type:
        """The Python type of the option's values."""
        return self.kind if self.kind is not None else type(self.default)

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")


COMMON_OPTIONS = (
    Option("seed", 0, "random seed of data, initialization and minibatches", check=check_seed),
    Option("device", "cpu", "torch device ('cpu', 'cuda', 'cuda:N')", check=check_device, on_resume=True),
    Option("dtype", "float64", "floating dtype of the model", choices=("float32", "float64")),
    Option("quick", False, "a smoke run of a few seconds (small data, few steps)"),
    Option("threads", None, "torch CPU threads", kind=int, default_text="torch's default", check=check_positive_int,
           on_resume=True),
)  # fmt: skip
"""Options every subcommand takes."""

TRAINING_OPTIONS = (
    Option("steps", None, "optimizer steps", kind=int, default_text="the preset's", check=check_positive_int,
           on_resume=True),
    Option("time_limit", None, "training time limit in seconds", kind=float, default_text="the preset's",
           check=check_positive_float, on_resume=True),
    Option("checkpoint_every", 500, "write OUT/training.pt every this many steps", check=check_positive_int,
           on_resume=True),
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
        import_object(value, option.objects, f"{source}: {option.name}")
    elif option.choices is not None and value not in option.choices:
        close = difflib.get_close_matches(str(value), list(map(str, option.choices)), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{source}: invalid {option.name} {value!r}; {hint}choose one of {', '.join(option.choices)}")
    if option.check is not None:
        try:
            option.check(value, option.name, source)
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from error
    return value


def import_object(spec: str, kind: type, who: str) -> Any:
    """The object named by ``spec``: ``package.module:name`` (importable) or ``path/to/file.py:name``, imported
    once per process; it must be an instance of ``kind``. Raises :class:`ConfigError` naming ``who`` and what went
    wrong."""
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute.isidentifier():
        raise ConfigError(f"{who}: expected 'package.module:name' or 'path/to/file.py:name', got {spec!r}")
    if module_name.endswith(".py") and not Path(module_name).is_file():
        raise ConfigError(f"{who}: no file {module_name}")
    try:
        module = _import_module(module_name)
    except Exception as error:  # the user's module may raise anything while it is imported
        raise ConfigError(f"{who}: importing {module_name} failed: {type(error).__name__}: {error}") from error
    value = getattr(module, attribute, None)
    if not isinstance(value, kind):
        got = "nothing" if value is None else type(value).__name__
        raise ConfigError(f"{who}: expected {spec} to be a {kind.__name__}, got {got}")
    return value


@functools.cache
def _import_module(name: str) -> ModuleType:
    """The module ``name``, or the file ``name`` (ending in ``.py``) run as a module."""
    if not name.endswith(".py"):
        return importlib.import_module(name)
    found = importlib.util.spec_from_file_location(Path(name).stem, name)
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


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
        own = (
            "" if option.objects is None else f", or your own {option.objects.__name__} as MODULE:NAME or FILE.py:NAME"
        )
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
