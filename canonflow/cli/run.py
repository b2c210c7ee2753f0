"""The harness every subcommand runs in: config resolution, the run directory, the report and the exit code.

A subcommand is a :class:`~canonflow.cli.catalog.Command`: its :class:`~canonflow.cli.options.Option` list and a
``run(config, run) -> dict`` function (``run``: the :class:`~canonflow.run_directory.Run` that owns the run
directory). :func:`execute` resolves the config (defaults < ``--config`` file < flags), claims the run directory
before anything is written, runs the command, writes ``config.toml``, ``figures/`` and ``metrics.json``, prints the
report, and turns the expected failures into one line on stderr and an exit code: 0 done, 1 diverged or an
unusable checkpoint, 2 invalid input or an unusable run directory, 130 interrupted (docs/run-directory.md). A
``distributed`` command takes ``--nproc N`` (relaunched under torchrun); only rank 0 writes and prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from canonflow.checkpoint import CheckpointError
from canonflow.cli.catalog import Command
from canonflow.cli.options import ConfigError, add_arguments, read_config_file, resolve_config
from canonflow.distributed import DistributedContext, close_distributed, context_from_environment, launch
from canonflow.run_directory import Run, RunDirectoryError
from canonflow.training import TrainingDiverged

__all__ = ["execute", "run_parsed", "script_main"]

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
log = logging.getLogger("canonflow")


def execute(
    command: Command,
    flags: Mapping[str, Any],
    *,
    config_file: Path | None = None,
    out: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    distributed: DistributedContext | None = None,
) -> int:
    """Run ``command`` as the command line does and return the exit code (see the module docstring); errors
    are reported as ``PROG: error: ...`` (``prog`` defaults to the command's name). ``distributed``: this
    rank's context in a data-parallel run (only rank 0 writes files and prints)."""
    name = prog or command.name
    try:
        run = Run(out, progress=not quiet, resume=resume, distributed=distributed, overwrite=overwrite)
    except RunDirectoryError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if distributed is not None and not command.distributed:
            raise ConfigError(f"{command.name} does not support data-parallel runs; run it as a single process")
        if resume and out is None:
            raise ConfigError("--resume needs --out DIR, the run directory to continue")
        if resume and config_file is None and run.config_file() is not None:
            config_file = run.config_file()
            log.info("resuming with the config in %s", config_file)
        file_values = read_config_file(config_file) if config_file is not None else {}
        config = resolve_config(command.options, file_values, flags, source=str(config_file))
        run.claim(command.name, config, {option.name for option in command.options if option.on_resume})
        if config.get("threads") is not None:
            torch.set_num_threads(config["threads"])
        if run.writes:
            if resume and not run.has_training_state():
                log.warning("%s: no training state in %s; starting from scratch", name, out)
            run.figures()
            run.write_config(command.name, config)
        started, began = time.time(), time.perf_counter()
        results = command.run(config, run)
        if run.writes:
            seconds = time.perf_counter() - began
            run.write_metrics(command.name, config, results, started=started, seconds=seconds, argv=argv)
    except KeyboardInterrupt:
        hint = (
            f"; training state saved in {out}, continue with --resume --out {out}" if run.has_training_state() else ""
        )
        print(f"{name}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TrainingDiverged, CheckpointError, ValueError, OSError) as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_FAILED if isinstance(error, (TrainingDiverged, CheckpointError)) else EXIT_USAGE
    finally:
        run.release()
    if run.is_main:
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
        return launch(args.nproc, command_line[1:]) if from_console else launch(args.nproc, command_line, module=None)
    distributed = context_from_environment()
    quiet = args.quiet or not (distributed is None or distributed.is_main)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    code = 1
    try:
        code = execute(
            command,
            {option.name: getattr(args, option.name) for option in command.options if hasattr(args, option.name)},
            config_file=args.config,
            out=out if out is not None else args.out,
            resume=getattr(args, "resume", False),
            overwrite=args.overwrite,
            quiet=quiet,
            argv=command_line,
            prog=prog,
            distributed=distributed,
        )
        return code
    finally:
        close_distributed(synchronize=code == 0)


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
