"""Options of the subcommands and how a config is resolved from them: defaults < ``--config`` file < flags.

An :class:`Option` is one setting: TOML key ``name`` in a config file, flag ``--name`` (``_`` written ``-``) on
the command line. :func:`resolve_config` checks types, choices and values and raises :class:`ConfigError`
(exit code 2) naming the valid keys or choices.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "COMMON_OPTIONS",
    "TRAINING_OPTIONS",
    "ConfigError",
    "Option",
    "add_options",
    "complete",
    "non_negative",
    "positive",
    "read_config_file",
    "resolve_config",
    "torch_dtype",
]


class ConfigError(ValueError):
    """A config that cannot be used: an unknown key, a value of the wrong type or outside its choices."""


@dataclass(frozen=True)
class Option:
    """One setting of a subcommand: TOML key ``name``, command-line flag ``--name`` (``_`` written ``-``).

    ``kind`` is ``int``, ``float``, ``str`` or ``bool`` (taken from ``default`` when that is not ``None``);
    ``None`` as default means "the preset's value" and is described by ``default_text`` in ``--help``.
    ``check(value)`` returns an error text for an invalid value, or ``None``. A ``positional`` option is an
    argument (as ``CHECKPOINT`` of ``evaluate``), required on the command line.
    """

    name: str
    default: Any
    help: str
    kind: type | None = None
    choices: Sequence[Any] | None = None
    default_text: str | None = None
    check: Callable[[Any], str | None] | None = None
    positional: bool = False

    @property
    def type(self) -> type:
        """The Python type of the option's values."""
        return self.kind if self.kind is not None else type(self.default)

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")


def positive(value: float) -> str | None:
    """An option check: ``value > 0``."""
    return None if value > 0 else f"must be positive, got {value}"


def non_negative(value: float) -> str | None:
    """An option check: ``value >= 0``."""
    return None if value >= 0 else f"must be >= 0, got {value}"


def _device(value: str) -> str | None:
    try:
        device = torch.device(value)
    except RuntimeError:
        return f"expected a torch device such as 'cpu', 'cuda' or 'cuda:1', got {value!r}"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"{value!r} was requested but CUDA is not available to this torch ({torch.__version__}); use 'cpu'"
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        return f"{value!r} was requested but only {torch.cuda.device_count()} CUDA device(s) are visible"
    if device.type not in ("cpu", "cuda"):
        return f"expected 'cpu' or 'cuda[:N]', got {value!r}"
    return None


COMMON_OPTIONS = (
    Option("seed", 0, "random seed of data, initialization and minibatches"),
    Option("device", "cpu", "torch device ('cpu', 'cuda', 'cuda:N')", check=_device),
    Option("dtype", "float64", "floating dtype of the model", choices=("float32", "float64")),
    Option("quick", False, "a smoke run of a few seconds (small data, few steps)"),
    Option("threads", None, "torch CPU threads", kind=int, default_text="torch's default", check=positive),
)
"""Options every subcommand takes."""

TRAINING_OPTIONS = (
    Option("steps", None, "optimizer steps", kind=int, default_text="the preset's", check=positive),
    Option("time_limit", None, "training time limit in seconds", kind=float, default_text="the preset's"),
    Option("checkpoint_every", 500, "write OUT/training.pt every this many steps", check=positive),
)
"""Options of every subcommand that trains (``steps`` and ``time_limit`` override the preset when given)."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The table of a TOML config file (``ConfigError`` when it is missing or not valid TOML)."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError as error:
        raise ConfigError(f"no config file at {path}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error


def _checked(option: Option, value: Any, source: str) -> Any:
    expected = option.type
    if value is None and option.default is None:
        return None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {option.name} must be a {expected.__name__}, got {value!r}")
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{source}: invalid {option.name} {value!r}; choose one of {', '.join(option.choices)}")
    problem = option.check(value) if option.check is not None else None
    if problem is not None:
        raise ConfigError(f"{source}: {option.name}: {problem}")
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


def torch_dtype(config: Mapping[str, Any]) -> torch.dtype:
    """The torch dtype named by ``config["dtype"]``."""
    return {"float32": torch.float32, "float64": torch.float64}[config["dtype"]]


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Add ``options`` to ``parser``. Defaults are ``SUPPRESS``ed: only flags actually given reach the
    namespace, so they override the config file and nothing else does."""
    for option in options:
        shown = option.default_text if option.default is None else repr(option.default)
        text = f"{option.help} (default: {shown})"
        if option.positional:
            parser.add_argument(option.name, type=option.type, help=option.help)
        elif option.type is bool:
            parser.add_argument(
                option.flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
        else:
            metavar = "{" + ",".join(map(str, option.choices)) + "}" if option.choices else option.name.upper()
            parser.add_argument(
                option.flag, type=option.type, choices=option.choices, default=argparse.SUPPRESS, metavar=metavar,
                help=text,
            )  # fmt: skip
