"""The subcommands as data: each one's name, help, description and options, and the module that runs it.

``canonflow --help`` and ``canonflow COMMAND --help`` are built from this table alone, without importing torch
or the library; a subcommand's module (``canonflow.cli.<name>``, which defines ``run``, ``report`` and ``COMMAND``, the
:class:`Command` with them) is imported only to run it. The documentation's command-line reference is generated
from the same table.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from canonflow.cli.options import COMMON_OPTIONS, TRAINING_OPTIONS, Option
from canonflow.presets import GENERIC, presets

__all__ = ["SUBCOMMANDS", "Command", "command"]

SYSTEM = "canonflow.systems:HamiltonianSystem"
RESULTS = "Results and files: docs/cli-results.md."


@dataclass(frozen=True)
class Command:
    """A subcommand: ``canonflow NAME`` runs ``run(config, run) -> results`` (``run``: the
    :class:`~canonflow.run_directory.Run` that owns the run directory) and prints ``report(results) -> lines``.

    The catalog (:data:`SUBCOMMANDS`) holds name, help, description and options only; the functions live in
    :attr:`module` (``canonflow.cli.<name>``), whose ``COMMAND`` is the entry with them filled in
    (:func:`command`). ``resumable`` ones train (they take ``--resume``); ``distributed`` ones support data-parallel
    runs (``--nproc``, torchrun); ``evaluate_checkpoint(model, trained, config)``, when given, recomputes the
    held-out results of a ``model.pt`` written by this command with the (completed) config ``trained``.
    """

    name: str
    help: str
    description: str
    options: tuple[Option, ...]
    resumable: bool = True
    distributed: bool = False
    run: Callable[[Mapping[str, Any], Any], dict[str, Any]] | None = None
    report: Callable[[dict[str, Any]], list[str]] | None = None
    evaluate_checkpoint: Callable[..., dict[str, Any]] | None = None

    @property
    def module(self) -> str:
        """The module that runs the subcommand."""
        return "canonflow.cli." + self.name.replace("-", "_")

    def command(self) -> Command:
        """The subcommand with its functions (its module imported)."""
        return importlib.import_module(self.module).COMMAND


def command(module: str) -> Command:
    """The entry of :data:`SUBCOMMANDS` run by the subcommand module ``module`` (its ``__name__``), with what the
    module defines: ``run``, ``report`` and, optionally, ``evaluate_checkpoint``."""
    found = vars(sys.modules[module])
    spec = next(spec for spec in SUBCOMMANDS.values() if spec.module == module)
    return replace(spec, run=found["run"], report=found["report"], evaluate_checkpoint=found.get("evaluate_checkpoint"))


def _trajectory_file(value: str, name: str, who: str) -> None:
    """``--data``'s check: an existing file of one of ``load_trajectories``' formats (its contents are checked
    when it is read). Run when a config is resolved, so the loader's module is imported only then."""
    from canonflow.data.trajectory_files import FORMATS

    path = Path(value)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{who}: {name} must be a {' or '.join(FORMATS)} file of trajectories, got {value!r}")
    if not path.is_file():
        raise ValueError(f"{who}: {name}: no file {value}")


def _preset_names(command: str) -> list[str]:
    """The preset names of ``command`` a user chooses from (the generic preset serves the user's own objects)."""
    return sorted(set(presets(command)) - {GENERIC})


SUBCOMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            "demo",
            "learn action-angle coordinates of Kepler orbits in a few minutes (or --example banana)",
            "Learn action-angle coordinates of planar Kepler orbits in a few minutes, or fit a banana density.\n\n"
            "--example kepler (the default) runs canonflow action-angle --system kepler2d_demo. --example banana\n"
            "fits a canonical flow to a density whose exact NLL is known and checks the flow's exactness (inverse\n"
            "round trip, symplectic defect). Settings: canonflow/presets/demo.toml. " + RESULTS,
            (
                Option("example", "kepler", "which demo: Kepler action-angle coordinates or a banana density",
                       choices=("kepler", "banana")),
                Option("lr", 1e-2, "Adam learning rate (banana)", check="positive_float"),
                Option("batch_size", 256, "minibatch size (banana)", check="positive_int"),
                Option("hidden", 64, "hidden width of the gradient fields (banana)", check="positive_int"),
                *TRAINING_OPTIONS,
                *COMMON_OPTIONS,
            ),
            distributed=True,
        ),
        Command(
            "action-angle",
            "learn action-angle coordinates of an integrable system",
            "Learn action-angle coordinates of a benchmark system and evaluate them.\n\n"
            "Trains an action-angle flow on trajectories of the chosen system (its settings:\n"
            "canonflow/presets/action-angle.toml) and evaluates it on held-out trajectories from another seed.\n"
            "--system also takes your own HamiltonianSystem as MODULE:NAME (with a sample_initial for its initial\n"
            "states), trained with the generic preset. " + RESULTS,
            (
                Option("system", "oscillator", "benchmark system", choices=_preset_names("action-angle"),
                       objects=SYSTEM),
                *TRAINING_OPTIONS,
                *COMMON_OPTIONS,
            ),
            distributed=True,
        ),
        Command(
            "free-energy",
            "variational free energy of a Boltzmann distribution",
            "The free energy of a Boltzmann distribution e^(-βH) with a canonical flow.\n\n"
            "Trains a canonical flow by reverse KL and estimates F from fresh model samples (variational and\n"
            "importance-sampled, with standard errors and ESS), against the exact value where it is known. --system\n"
            "takes a catalogue name or your own HamiltonianSystem (e.g. mymodule:system, made with\n"
            "HamiltonianSystem.from_potential), trained with the generic preset. Settings:\n"
            "canonflow/presets/free-energy.toml. " + RESULTS,
            (
                Option("system", "double_well", "Boltzmann distribution e^{-βH} of this system",
                       choices=_preset_names("free-energy"), objects=SYSTEM),
                Option("beta", 1.0, "inverse temperature β", check="positive_float"),
                Option("samples", None, "model samples of the free-energy estimates", kind=int,
                       default_text="200000, 10000 quick", check="positive_int", on_resume=True),
                Option("gradient", None,
                       "reverse-KL gradient estimator: 'path' (path derivative, zero variance at the optimum) or "
                       "'total'", kind=str, choices=("path", "total"), default_text="the preset's"),
                *TRAINING_OPTIONS,
                *COMMON_OPTIONS,
            ),
            distributed=True,
        ),
        Command(
            "density",
            "maximum-likelihood density estimation on momentum-augmented data",
            "Maximum-likelihood density estimation with a canonical flow on momentum-augmented data.\n\n"
            "Configurations q are augmented with momenta p ~ N(0, I); the reported NLLs are of q alone (an upper\n"
            "bound and an importance-weighted estimate). Settings: canonflow/presets/density.toml. " + RESULTS,
            (
                Option("dataset", "ring2d", "data set (digits needs scikit-learn)", choices=sorted(presets("density"))),
                Option("momenta", None, "momentum draws K of the test NLL", kind=int, default_text="64, 8 quick",
                       check="positive_int", on_resume=True),
                *TRAINING_OPTIONS,
                *COMMON_OPTIONS,
            ),
            distributed=True,
        ),
        Command(
            "sample",
            "compare HMC or NUTS, NeuTra and flow-MCMC samplers on a target density",
            "Compare samplers on a hard target: HMC or NUTS (--sampler), NeuTra, flow-MCMC, learned leapfrog.\n\n"
            "Trains a canonical flow sampler and a leapfrog one, then samples the target with each method and\n"
            "reports ESS per target evaluation, R-hat, acceptance and moment errors. --target also takes your own\n"
            "Target as MODULE:NAME (e.g. Target.from_potential(U, dim)), sampled with the generic preset and\n"
            "compared across samplers (no exact moments). Settings: canonflow/presets/sample.toml. " + RESULTS,
            (
                Option("target", "banana", "target density", choices=_preset_names("sample"),
                       objects="canonflow.sampling:Target"),
                Option("precondition", "moments", "the flows' exact affine first stage, fitted before training: "
                       "to warm-up draws' moments, a Laplace approximation at the mode, or none",
                       choices=("moments", "laplace", "none")),
                Option("sampler", "hmc", "gradient-based sampler on the target and in the canonical flow's latent "
                       "space (NeuTra): HMC with the preset's leapfrog steps, or NUTS", choices=("hmc", "nuts"),
                       on_resume=True),
                Option("metric", "auto", "their mass matrix: dense up to 50 dimensions and diagonal above (auto), "
                       "diagonal (Stan's default) or dense", choices=("auto", "diag", "dense"), on_resume=True),
                *TRAINING_OPTIONS,
                *COMMON_OPTIONS,
            ),
        ),
        Command(
            "learn-hamiltonian",
            "learn a Hamiltonian from noisy trajectories",
            "Learn a Hamiltonian from noisy trajectories and compare it with the truth.\n\n"
            "One protocol per system, from the literature it reproduces (Greydanus et al. 2019 for spring and\n"
            "pendulum, Choudhary et al. 2024 for the others); canonflow/presets/learn-hamiltonian.toml describes\n"
            "them. Reports the Hamiltonian error on test sets and the energy error along rollouts. --data FILE\n"
            "learns from your own trajectories instead (the generic preset), evaluated by rollouts over the\n"
            "held-out trajectories' observed times. " + RESULTS,
            (
                Option("system", "spring", "system and protocol", choices=_preset_names("learn-hamiltonian")),
                Option("data", None, "your own trajectories to learn from instead of a protocol's simulated ones: "
                       "a .npz or .csv file of (t, q, p) or (t, q) (docs: Your own system)", kind=str,
                       default_text="none", check=_trajectory_file),
                Option("mass", None, "with --data of (t, q) only: the mass m of p = m dq/dt", kind=float,
                       default_text="none", check="positive_float"),
                Option("damping", False, "with --data: also learn a linear friction γ (dp/dt = -∂H/∂q - γp)"),
                Option("mode", None, "loss", kind=str, choices=("derivative", "leapfrog", "implicit_midpoint"),
                       default_text="the protocol's"),
                Option("adjoint", None, "implicit midpoint: adjoint gradients", kind=bool,
                       default_text="on for a protocol's implicit_midpoint; off with --data, whose records with gaps "
                       "or damping refuse it"),
                Option("lr", None, "Adam learning rate", kind=float, default_text="the protocol's",
                       check="positive_float"),
                Option("polynomial", None, "degree of HamiltonianNet's polynomial part (0: none)", kind=int,
                       default_text="the protocol's", check="non_negative_int"),
                Option("base_steps", None, "steps fitting the polynomial part alone first (0: none)", kind=int,
                       default_text="the protocol's (0 without a polynomial part)", check="non_negative_int"),
                *(option for option in TRAINING_OPTIONS if option.name != "compile"),  # fit_hamiltonian refuses it
                *COMMON_OPTIONS,
            ),
        ),
        Command(
            "evaluate",
            "describe a model.pt and recompute its held-out metrics",
            "Describe any model.pt and recompute its held-out metrics.\n\n"
            "A corrupted, foreign or wrong-architecture file is a one-line error. When the checkpoint says what it\n"
            "was trained on, the held-out metrics are recomputed as the command that trained it computes them.",
            (
                Option("checkpoint", None, "a model.pt written by canonflow", kind=str, positional=True),
                *(option for option in COMMON_OPTIONS if option.name in ("quick", "threads")),
            ),
            resumable=False,
        ),
        Command(
            "bench",
            "time canonflow's layers against their peers",
            "Time canonflow's layers against their peers (forward + backward, batch 1024).\n\n"
            "Canonical flows against nflows additive couplings, IrrotationalMLP against GradientField, diagonal\n"
            "LinearSymplectic against MatrixExpSymplectic; speedup = peer time / canonflow time. --quick: the two\n"
            "smallest sizes and 0.05 s per timing. Results: docs/cli-results.md.",
            (
                Option("min_run_time", None, "seconds per timing", kind=float, default_text="1.0, 0.05 with --quick"),
                *(option for option in COMMON_OPTIONS if option.name != "dtype"),
                Option("dtype", "float32", "floating dtype of inputs and layers", choices=("float32", "float64")),
            ),
            resumable=False,
        ),
    )
}  # fmt: skip
"""The subcommands by name, in the order ``canonflow --help`` lists them."""
