"""The ``canonflow`` command line: one subcommand per application, each a thin layer over the library.

Every subcommand module (``demo``, ``action_angle``, ``free_energy``, ``density``, ``sample``,
``learn_hamiltonian``, ``evaluate``, ``bench``) defines ``OPTIONS``, a ``run(config, run) -> dict`` (``run``: a
:class:`~canonflow.run_directory.Run`, e.g. ``Run(out)``) that the scripts in ``experiments/`` call, a
``report(results) -> lines``, optionally ``evaluate_checkpoint``, and ``COMMAND`` made of them by
:func:`canonflow.cli.run.command`; :mod:`canonflow.cli.run` is the harness they share; their presets are data
(:mod:`canonflow.presets`); the metrics they report are computed by the library.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.errors import record

import canonflow
from canonflow.cli import bench, evaluate
from canonflow.cli.run import Command, add_arguments, run_parsed

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, Command] = {
    command.name: command for command in (*evaluate.EVALUATORS.values(), evaluate.COMMAND, bench.COMMAND)
}
"""The subcommands by name."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``canonflow`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="canonflow",
        description="Normalizing flows built from exact canonical transformations: train, evaluate, benchmark.",
        epilog="Each subcommand's --help lists its options with their choices and defaults.",
    )
    parser.add_argument("--version", action="version", version=f"canonflow {canonflow.__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        formatter = argparse.RawDescriptionHelpFormatter
        subparser = subcommands.add_parser(
            command.name, help=command.help, description=command.description, formatter_class=formatter
        )
        add_arguments(subparser, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    ``--nproc N`` (N > 1) relaunches the same command line as N processes under torchrun (``python -m
    torch.distributed.run --standalone --nproc_per_node N -m canonflow ...``, see
    :func:`canonflow.cli.run.run_parsed`) and returns its exit code. Under torchrun, an unexpected exception is
    also recorded for torchrun's report of which rank failed and why.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    return record(_main)(argv) if "RANK" in os.environ else _main(argv)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run_parsed(COMMANDS[args.command], args, ["canonflow", *argv])
