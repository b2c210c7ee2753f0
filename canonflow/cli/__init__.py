"""The ``canonflow`` command line: one subcommand per application, each a thin layer over the library.

:mod:`canonflow.cli.catalog` lists the subcommands as data (name, help, options), so the parser, ``--help`` and
``--version`` need neither torch nor the library. Each subcommand module (``demo``, ``action_angle``,
``free_energy``, ``density``, ``sample``, ``learn_hamiltonian``, ``evaluate``, ``bench``) defines a
``run(config, run) -> dict`` (``run``: a :class:`~canonflow.run_directory.Run`, e.g. ``Run(out)``) that the scripts
in ``experiments/`` call, a ``report(results) -> lines``, optionally ``evaluate_checkpoint``, and ``COMMAND`` made
of them by :func:`canonflow.cli.run.command`; it is imported only when its subcommand runs.
:mod:`canonflow.cli.run` is the harness they share; their presets are data (:mod:`canonflow.presets`); the
metrics they report are computed by the library.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import canonflow
from canonflow.cli.catalog import SUBCOMMANDS
from canonflow.cli.options import add_arguments

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = SUBCOMMANDS
"""The subcommands by name (:data:`canonflow.cli.catalog.SUBCOMMANDS`)."""


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
    if "RANK" not in os.environ:
        return _main(argv)
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_main)(argv)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from canonflow.cli.run import run_parsed  # the harness imports torch: only once a subcommand runs

    return run_parsed(COMMANDS[args.command].command(), args, ["canonflow", *argv])
