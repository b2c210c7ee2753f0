"""The reference runs of ``canonflow free-energy`` and ``canonflow density`` as functions of their preset.

A preset is a ``free-energy`` or ``density`` preset's settings (``canonflow/presets/<command>.toml``, read with
``canonflow.presets.load_preset(command, name).settings()``): the flow (``model``: keyword arguments of
:meth:`~canonflow.CanonicalFlow.build`), ``batch_size``, and for free energies the reverse-KL ``gradient``, the
``samples`` of the estimates and ``exact_frequencies`` (the name of the system's method giving its normal-mode
frequencies), for densities the ``momenta`` ``K`` of the test NLL. The training budget comes as a
:class:`~canonflow.training.TrainConfig`. :func:`run_free_energy` and :func:`run_density` run one end to end; the
entry functions make a results entry of any fitted flow (e.g. a baseline trained the same way). :func:`run_banana`
is ``canonflow demo --example banana``: a density whose exact NLL is known, and the flow's exactness checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from nflows.flows import Flow

from canonflow.data import BANANA_NLL, Dataset, banana
from canonflow.density.fit import fit_density, fit_variational
from canonflow.density.metrics import held_out_nll, latent_spectrum
from canonflow.distributed import DistributedContext
from canonflow.estimators import exact_free_energy, free_energy
from canonflow.flow import CanonicalFlow
from canonflow.testing import round_trip_error, symplectic_defect
from canonflow.training import TrainConfig, TrainResult
from canonflow.validation import validation

__all__ = [
    "ESTIMATE_SEED_OFFSET",
    "TEST_SEED_OFFSET",
    "FittedFlow",
    "banana_checks",
    "banana_draws",
    "density_entry",
    "free_energy_entry",
    "free_energy_estimates",
    "run_banana",
    "run_density",
    "run_free_energy",
    "held_out_nll_entry",
]

Energy = Callable[[torch.Tensor], torch.Tensor]

ESTIMATE_SEED_OFFSET = 10
"""The free-energy estimates draw from ``torch.Generator().manual_seed(seed + ESTIMATE_SEED_OFFSET)``."""
TEST_SEED_OFFSET = 4
"""The test NLL's momenta are drawn from ``torch.Generator().manual_seed(seed + TEST_SEED_OFFSET)``."""


class FittedFlow(NamedTuple):
    """A reference run's fitted ``flow`` (on the CPU), its ``training`` and its results ``entry`` (JSON-ready)."""

    flow: CanonicalFlow
    training: TrainResult
    entry: dict[str, Any]


def free_energy_estimates(flow: Flow, energy: Energy, beta: float, num_samples: int, seed: int) -> dict[str, Any]:
    """``exact_free_energy`` (:func:`~canonflow.estimators.exact_free_energy`, ``None`` when unknown) and the
    free-energy estimates of ``flow`` for ``e^{−β·energy}`` with their errors
    (:meth:`~canonflow.estimators.FreeEnergyEstimate.as_dict`) from ``num_samples`` draws (seed
    ``seed + ESTIMATE_SEED_OFFSET``)."""
    exact = exact_free_energy(energy, beta)
    generator = torch.Generator().manual_seed(seed + ESTIMATE_SEED_OFFSET)
    found = free_energy(flow, energy, beta, num_samples, generator)
    return {"exact_free_energy": exact, **found.as_dict(exact)}


def free_energy_entry(
    flow: Flow, energy: Energy, beta: float, num_samples: int, seed: int, result: TrainResult
) -> dict[str, Any]:
    """The results entry of a flow fitted by reverse KL: :meth:`TrainResult.summary
    <canonflow.training.TrainResult.summary>` (size, time, steps, loss curve) and :func:`free_energy_estimates`
    without the exact value (a run states it once)."""
    entry = {**result.summary(flow), **free_energy_estimates(flow, energy, beta, num_samples, seed)}
    del entry["exact_free_energy"]
    return entry


def run_free_energy(
    preset: dict[str, Any],
    system: Energy,
    beta: float,
    seed: int,
    config: TrainConfig,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    distributed: DistributedContext | None = None,
) -> FittedFlow:
    """Fit ``CanonicalFlow.build(n, beta=beta, **preset["model"])`` (initialized from seed ``seed``, in ``dtype``
    on ``device``) to ``e^{−β·system}`` by :func:`~canonflow.density.fit_variational` (``preset``'s
    ``batch_size`` and ``gradient``, ``config``'s budget) and estimate its free energy from ``preset["samples"]``
    draws (:func:`free_energy_entry`). The entry adds ``gradient`` and the learned latent spectrum
    (:func:`~canonflow.density.latent_spectrum`, against ``system.<preset["exact_frequencies"]>()`` when the
    preset names it). ``system``: a :class:`~canonflow.systems.HamiltonianSystem` (``n`` degrees of freedom)."""
    torch.manual_seed(seed)
    flow = CanonicalFlow.build(system.n, beta=beta, **preset["model"]).to(dtype=dtype, device=device)
    with validation(False):
        result = fit_variational(
            flow, system, beta, batch_size=preset["batch_size"], config=config, gradient=preset["gradient"],
            distributed=distributed,
        )  # fmt: skip
        flow = flow.cpu()
        entry = free_energy_entry(flow, system, beta, preset["samples"], seed, result)
    exact = getattr(system, preset["exact_frequencies"])() if "exact_frequencies" in preset else None
    entry |= {"gradient": preset["gradient"], **latent_spectrum(flow, exact)}
    return FittedFlow(flow, result, entry)


def held_out_nll_entry(
    flow: Flow, data: Dataset, momenta: int | None, seed: int, *, bits_per_dim: bool = False
) -> dict[str, float]:
    """:func:`~canonflow.density.held_out_nll` of ``flow`` on ``data.test`` as ``test_*`` keys (``momenta``:
    ``K`` momentum draws, seed ``seed + TEST_SEED_OFFSET``; ``None`` for a flow on ``q`` directly;
    ``bits_per_dim``: also bits/dim of the preprocessed values, with ``data.test_log_jacobian``)."""
    log_jacobian = data.test_log_jacobian if bits_per_dim else None
    generator = torch.Generator().manual_seed(seed + TEST_SEED_OFFSET)
    with validation(False):
        found = held_out_nll(flow, data.test, num_momenta=momenta, generator=generator, log_jacobian=log_jacobian)
    return {f"test_{key}": value for key, value in found.items()}


def density_entry(
    flow: Flow, result: TrainResult, data: Dataset, momenta: int | None, seed: int, *, bits_per_dim: bool = False
) -> dict[str, Any]:
    """The results entry of a flow fitted by maximum likelihood: :meth:`TrainResult.summary
    <canonflow.training.TrainResult.summary>`, the ``validation_curve`` (``steps``, ``values``), the best
    ``validation_nll`` and :func:`held_out_nll_entry`."""
    curve = {"steps": [step for step, _ in result.validation], "values": [value for _, value in result.validation]}
    entry = {**result.summary(flow), "validation_curve": curve, "validation_nll": result.best_validation}
    return entry | held_out_nll_entry(flow, data, momenta, seed, bits_per_dim=bits_per_dim)


def run_density(
    preset: dict[str, Any],
    data: Dataset,
    seed: int,
    config: TrainConfig,
    *,
    bits_per_dim: bool = False,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    distributed: DistributedContext | None = None,
) -> FittedFlow:
    """Fit ``CanonicalFlow.build(D, **preset["model"])`` (``D``: the data's width; initialized from seed
    ``seed``, in ``dtype`` on ``device``) to ``data.train`` by :func:`~canonflow.density.fit_density` (validated on
    ``data.validation``, ``preset``'s ``batch_size``, ``config``'s budget); the entry is :func:`density_entry`
    with ``preset["momenta"]``."""
    torch.manual_seed(seed)
    flow = CanonicalFlow.build(data.train.shape[1], **preset["model"]).to(dtype=dtype, device=device)
    train, held = (part.to(dtype=dtype, device=device) for part in (data.train, data.validation))
    with validation(False):
        result = fit_density(
            flow, train, validation_data=held, batch_size=preset["batch_size"], config=config, distributed=distributed
        )
    flow = flow.cpu()
    return FittedFlow(
        flow, result, density_entry(flow, result, data, preset["momenta"], seed, bits_per_dim=bits_per_dim)
    )


def banana_draws(
    num_train: int, num_test: int, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_train`` training and then ``num_test`` test draws ``(N, 2)`` of the banana density
    (:func:`~canonflow.data.banana`, one generator seeded with ``seed``), in ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    return banana(num_train, generator).to(dtype), banana(num_test, generator).to(dtype)


def banana_checks(flow: CanonicalFlow, test: torch.Tensor) -> dict[str, float]:
    """``test_nll``, the mean NLL of ``flow`` on banana draws ``test`` ``(N, 2)``, next to the exact
    ``exact_nll`` (:data:`~canonflow.data.BANANA_NLL`); the flow's exactness: ``round_trip_error``
    (:func:`~canonflow.testing.round_trip_error` of its transform on ``test``) and ``symplectic_defect``, the
    largest ``max|JᵀΩJ − Ω|`` over the first 64 draws (:func:`~canonflow.testing.symplectic_defect`)."""
    with torch.no_grad():
        test_nll = -flow.log_prob(test).mean().item()
    return {
        "test_nll": test_nll,
        "exact_nll": BANANA_NLL,
        "round_trip_error": round_trip_error(flow.transform, test),
        "symplectic_defect": symplectic_defect(flow.transform, test[:64]).max().item(),
    }


def run_banana(
    model: dict[str, Any],
    data: torch.Tensor,
    test: torch.Tensor,
    seed: int,
    config: TrainConfig,
    *,
    batch_size: int = 256,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    distributed: DistributedContext | None = None,
) -> FittedFlow:
    """Fit ``CanonicalFlow.build(1, **model)`` (initialized from seed ``seed``, in ``dtype`` on ``device``) to the
    banana draws ``data`` ``(N, 2)`` by :func:`~canonflow.density.fit_density` (no validation split, minibatches of
    ``batch_size``, ``config``'s budget); the entry: ``steps``, ``train_seconds``, ``parameters`` and
    :func:`banana_checks` on ``test``."""
    torch.manual_seed(seed)
    flow = CanonicalFlow.build(1, **model).to(dtype=dtype, device=device)
    result = fit_density(
        flow, data.to(dtype=dtype, device=device), validation_fraction=0, batch_size=batch_size, config=config,
        distributed=distributed,
    )  # fmt: skip
    flow = flow.cpu()
    parameters = sum(p.numel() for p in flow.parameters())
    entry = {"steps": result.steps, "train_seconds": result.seconds, "parameters": parameters}
    return FittedFlow(flow, result, entry | banana_checks(flow, test))
