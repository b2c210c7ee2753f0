"""The harness every subcommand runs in: options, config resolution, run directories, metrics and errors.

A subcommand is a :class:`Command`: a name, its :class:`Option` list and a ``run(config, out, *, progress,
resume) -> dict`` function that trains/evaluates and returns its results. :func:`execute` resolves the config
(the options' defaults < the ``--config`` TOML file < flags given on the command line), creates ``OUT`` and
``OUT/figures``, writes ``OUT/config.toml`` before and ``OUT/metrics.json`` after the run, prints the command's
report, and turns the expected failures into one line on stderr and an exit code:

* ``0``: done; ``1``: training diverged (NaN/Inf loss) or a checkpoint could not be used;
* ``2``: invalid input (unknown config key, invalid value, missing file, CUDA requested but unavailable) or a
  run directory that cannot be written;
* ``130``: interrupted by Ctrl-C (the training state is saved first, so ``--resume`` continues).

Data-parallel runs: a command with ``distributed=True`` takes ``--nproc N`` (:func:`run_parsed` then relaunches
the same command line, ``canonflow ...`` or a script, as N processes under torchrun) and, when started by
torchrun, receives its rank's
``canonflow.distributed.DistributedContext`` as ``run(..., distributed=context)``. Only rank 0 writes
``config.toml``, ``metrics.json``, models and figures (:func:`writes_outputs`), logs at INFO and prints the
report; every rank reads the same ``training.pt`` when resuming.

``metrics.json`` (:data:`METRICS_SCHEMA_VERSION`) is a JSON object with the keys ``schema_version``,
``command``, ``argv`` (the command line), ``canonflow_version``, ``torch_version``, ``python_version``,
``platform``, ``seed``, ``device``, ``dtype``, ``config`` (the resolved config), ``resumed``, ``world_size``
(processes of a data-parallel run), ``started_at``
(ISO 8601, UTC), ``wall_seconds`` and ``results`` (the subcommand's results, documented in its module).
Non-finite numbers are written as ``null``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import platform
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import tomli_w
import torch

import canonflow
from canonflow.checkpoint import CheckpointError, atomic_write
from canonflow.distributed import DistributedContext, close_distributed, context_from_environment, launch
from canonflow.training import TrainingDiverged

__all__ = [
    "COMMON_OPTIONS",
    "METRICS_SCHEMA_VERSION",
    "TRAINING_OPTIONS",
    "Command",
    "ConfigError",
    "Option",
    "add_arguments",
    "complete",
    "execute",
    "figures_dir",
    "flags_of",
    "loss_curve",
    "pyplot",
    "read_config_file",
    "resolve_config",
    "run_device",
    "run_parsed",
    "script_main",
    "torch_dtype",
    "training_options",
    "write_config",
    "write_metrics",
    "writes_outputs",
]

METRICS_SCHEMA_VERSION = 1
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
log = logging.getLogger("canonflow")


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


@dataclass(frozen=True)
class Command:
    """A subcommand: ``run(config, out, *, progress, resume) -> results`` and ``report(results) -> lines``.

    ``resumable`` commands train (they take ``--resume``); ``distributed`` ones support data-parallel runs
    (``--nproc``, torchrun) and take ``run(..., distributed=context)``; ``evaluate_checkpoint(model, extra,
    config)``, when given, recomputes the held-out results of a ``model.pt`` written by this command.
    """

    name: str
    help: str
    description: str
    options: tuple[Option, ...]
    run: Callable[..., dict[str, Any]]
    report: Callable[[dict[str, Any]], list[str]]
    resumable: bool = True
    distributed: bool = False
    evaluate_checkpoint: Callable[..., dict[str, Any]] | None = None


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be positive, got {value}"


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
    Option("threads", None, "torch CPU threads", kind=int, default_text="torch's default", check=_positive),
)
"""Options every subcommand takes."""

TRAINING_OPTIONS = (
    Option("steps", None, "optimizer steps", kind=int, default_text="the preset's", check=_positive),
    Option("time_limit", None, "training time limit in seconds", kind=float, default_text="the preset's"),
    Option("checkpoint_every", 500, "write OUT/training.pt every this many steps", check=_positive),
)
"""Options of every subcommand that trains (``steps`` and ``time_limit`` override the preset when given)."""


# ---------------------------------------------------------------------------------------------- config
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


def run_device(config: Mapping[str, Any], distributed: DistributedContext | None) -> torch.device:
    """The device to train on: this rank's device in a data-parallel run, else ``config["device"]``."""
    return distributed.device if distributed is not None else torch.device(config["device"])


def torch_dtype(config: Mapping[str, Any]) -> torch.dtype:
    """The torch dtype named by ``config["dtype"]``."""
    return {"float32": torch.float32, "float64": torch.float64}[config["dtype"]]


def training_options(
    config: Mapping[str, Any],
    out: Path | None,
    preset: Mapping[str, Any],
    *,
    description: str,
    progress: bool,
    resume: bool,
    checkpoint: str = "training.pt",
) -> dict[str, Any]:
    """Keyword arguments of :class:`canonflow.training.TrainConfig`: ``preset``, with ``steps`` and
    ``time_limit`` from ``config`` where set, ``seed`` and ``checkpoint_every`` from ``config``, and a
    checkpoint ``OUT/checkpoint`` (none without ``out``) that ``resume`` continues from."""
    settings = dict(preset)
    for key in ("steps", "time_limit"):
        if config.get(key) is not None:
            settings[key] = config[key]
    settings.update(seed=config["seed"], description=description, progress=progress, resume=resume)
    if out is not None:
        settings.update(checkpoint=str(out / checkpoint), checkpoint_every=config["checkpoint_every"])
    return settings


# ---------------------------------------------------------------------------------------------- outputs
def writes_outputs(out: Path | None, distributed: DistributedContext | None) -> bool:
    """Whether this process writes the run's files: there is a run directory and this is rank 0 (or the only
    process)."""
    return out is not None and (distributed is None or distributed.is_main)


def figures_dir(out: Path) -> Path:
    """``OUT/figures``, created if needed."""
    path = out / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are written to files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(losses: Sequence[float], points: int = 200) -> dict[str, list[float]]:
    """Training losses averaged over at most ``points`` consecutive windows: ``{"steps": ..., "values": ...}``
    (``steps``: the last step of each window), small enough for ``metrics.json``."""
    window = max(1, math.ceil(len(losses) / points))
    starts = range(0, len(losses), window)
    return {
        "steps": [min(i + window, len(losses)) for i in starts],
        "values": [math.fsum(losses[i : i + window]) / len(losses[i : i + window]) for i in starts],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def write_config(path: Path, command: str, config: Mapping[str, Any]) -> None:
    """Write the resolved config as TOML (keys whose value is ``None``, "the preset's", are left out)."""
    table = {key: value for key, value in config.items() if value is not None}
    header = f"# resolved config of a {command} run; use it again with --config\n"
    atomic_write(path, lambda stream: stream.write((header + tomli_w.dumps(table)).encode()))


def write_metrics(
    path: Path,
    command: str,
    config: Mapping[str, Any],
    results: Mapping[str, Any],
    *,
    started: float,
    seconds: float,
    resumed: bool = False,
    argv: Sequence[str] | None = None,
    world_size: int = 1,
) -> dict[str, Any]:
    """Write ``metrics.json`` in the schema of this module's docstring and return what was written."""
    metrics = {
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
        "resumed": resumed,
        "world_size": world_size,
        "started_at": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
        "wall_seconds": seconds,
        "results": results,
    }
    metrics = _plain(metrics)
    text = json.dumps(metrics, indent=2) + "\n"
    atomic_write(path, lambda stream: stream.write(text.encode()))
    return metrics


# ---------------------------------------------------------------------------------------------- running
def add_arguments(parser: argparse.ArgumentParser, command: Command) -> None:
    """Add ``command``'s options and the run flags (``--config``, ``--out``, ``--resume``, ``--quiet``) to
    ``parser``. Option defaults are ``SUPPRESS``ed: only flags actually given reach the namespace, so they
    override the config file and nothing else does."""
    for option in command.options:
        shown = option.default_text if option.default is None else repr(option.default)
        text = f"{option.help} (default: {shown})"
        if option.positional:
            parser.add_argument(option.name, type=option.type, help=option.help)
            continue
        if option.type is bool:
            parser.add_argument(
                option.flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
        else:
            metavar = "{" + ",".join(map(str, option.choices)) + "}" if option.choices else option.name.upper()
            parser.add_argument(
                option.flag,
                type=option.type,
                choices=option.choices,
                default=argparse.SUPPRESS,
                metavar=metavar,
                help=text,
            )
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="config file; flags override it")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: none, nothing written)")
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


def _process_count(text: str) -> int:
    """``--nproc``'s value: a positive int (argparse reports anything else as a usage error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--nproc must be a positive number of processes, got {text}")
    return value


def flags_of(command: Command, args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line."""
    return {option.name: getattr(args, option.name) for option in command.options if hasattr(args, option.name)}


def execute(
    command: Command,
    flags: Mapping[str, Any],
    *,
    config_file: Path | None = None,
    out: Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    distributed: DistributedContext | None = None,
) -> int:
    """Run ``command`` as the command line does and return the exit code (see the module docstring); errors
    are reported as ``PROG: error: ...`` (``prog`` defaults to the command's name). ``distributed``: this
    rank's context in a data-parallel run (only rank 0 writes files and prints)."""
    name = prog or command.name
    main = distributed is None or distributed.is_main
    try:
        if distributed is not None and not command.distributed:
            raise ConfigError(f"{command.name} does not support data-parallel runs; run it as a single process")
        if resume and out is None:
            raise ConfigError("--resume needs --out DIR, the run directory to continue")
        if resume and config_file is None and (out / "config.toml").is_file():
            config_file = out / "config.toml"
            log.info("resuming with the config in %s", config_file)
        file_values = read_config_file(config_file) if config_file is not None else {}
        config = resolve_config(command.options, file_values, flags, source=str(config_file))
        if config.get("threads") is not None:
            torch.set_num_threads(config["threads"])
        if writes_outputs(out, distributed):
            figures_dir(out)
            write_config(out / "config.toml", command.name, config)
            if resume and not (out / "training.pt").is_file():
                log.warning("%s: no checkpoint in %s; starting from scratch", name, out)
        started, began = time.time(), time.perf_counter()
        parallel = {"distributed": distributed} if command.distributed else {}
        results = command.run(config, out, progress=not quiet, resume=resume, **parallel)
        seconds = time.perf_counter() - began
        if writes_outputs(out, distributed):
            write_metrics(
                out / "metrics.json",
                command.name,
                config,
                results,
                started=started,
                seconds=seconds,
                resumed=resume,
                argv=argv,
                world_size=1 if distributed is None else distributed.world_size,
            )
    except KeyboardInterrupt:
        saved = out is not None and any(out.glob("*training.pt"))
        hint = f"; training state saved in {out}, continue with --resume --out {out}" if saved else ""
        print(f"{name}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TrainingDiverged, CheckpointError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, OSError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if main:
        for line in command.report(results):
            print(line)
        if out is not None:
            print(f"wrote config.toml, metrics.json, figures and models to {out}")
    return 0


def run_parsed(command: Command, args: argparse.Namespace, command_line: Sequence[str], out: Path | None = None) -> int:
    """Set up logging (INFO, WARNING with ``--quiet`` or on ranks other than 0) and :func:`execute` ``command``
    with parsed ``args`` (``out`` replaces ``args.out`` when given); ``command_line`` is recorded in
    ``metrics.json``. ``--nproc N`` (N > 1) relaunches ``command_line`` (``canonflow ...`` as ``python -m
    canonflow``, else a script) as N processes under torchrun and returns torchrun's exit code. Under torchrun
    (``RANK`` set) the process group is started first and closed at the end."""
    from_console = command_line[0] == "canonflow"
    prog = f"canonflow {command.name}" if from_console else Path(command_line[0]).name
    if getattr(args, "nproc", 1) > 1:
        if "RANK" in os.environ:
            print(f"{prog}: error: --nproc launches torchrun; under torchrun use its --nproc_per_node", file=sys.stderr)
            return EXIT_USAGE
        if from_console:
            return launch(args.nproc, command_line[1:])
        return launch(args.nproc, command_line, module=None)
    distributed = context_from_environment()
    quiet = args.quiet or not (distributed is None or distributed.is_main)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    try:
        return execute(
            command,
            flags_of(command, args),
            config_file=args.config,
            out=out if out is not None else args.out,
            resume=getattr(args, "resume", False),
            quiet=quiet,
            argv=command_line,
            prog=prog,
            distributed=distributed,
        )
    finally:
        close_distributed()


def script_main(
    command: Command, argv: Sequence[str] | None = None, *, description: str | None = None, default_out: str = ""
) -> int:
    """The ``main`` of a script that runs ``command`` (as those in ``experiments/`` do): parse ``argv`` with its
    options and run it like the command line. Without ``--out`` the run directory is ``default_out`` formatted
    with the flags (e.g. ``"experiments/results/density_{dataset}"``); ``""``: nothing is written."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, command)
    args = parser.parse_args(argv)
    out = args.out
    if out is None and default_out:
        try:
            out = Path(default_out.format(**vars(args)))
        except KeyError as missing:
            parser.error(f"--out is required when --{missing.args[0]} is not given")
    return run_parsed(command, args, [sys.argv[0], *(sys.argv[1:] if argv is None else argv)], out)
