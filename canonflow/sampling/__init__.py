"""Sampling Boltzmann distributions ``π(q) ∝ e^{−U(q)}``: HMC, flow-preconditioned HMC (NeuTra), flow-MCMC with
canonical-flow proposals, canonical flows (incl. learned leapfrog) trained as samplers by reverse and/or forward
KL, MCMC diagnostics and run metrics, and benchmark targets with exact moments."""

from canonflow.sampling.adaptation import DualAveraging, adaptation_windows
from canonflow.sampling.bijectors import Bijector, Interval, ParameterSpace, Positive, Real, Simplex
from canonflow.sampling.comparison import FLOWS, SamplerComparison, compare_samplers
from canonflow.sampling.diagnostics import (
    ess,
    ess_bulk,
    ess_mean,
    ess_tail,
    mcse_mean,
    mcse_quantile,
    mcse_sd,
    rank_normalize,
    rhat,
)
from canonflow.sampling.euclidean_metric import METRICS, Metric
from canonflow.sampling.flow_mcmc import ImportanceResult, flow_mcmc, importance_resample, log_weights
from canonflow.sampling.hmc import hmc
from canonflow.sampling.initialization import find_mode, initial_points
from canonflow.sampling.metrics import moment_errors, sampler_metrics
from canonflow.sampling.model import ExpAffineAutoregressive, FlowSampler, joint_energy, joint_potential
from canonflow.sampling.neutra import neutra_hmc, neutra_nuts
from canonflow.sampling.nuts import nuts
from canonflow.sampling.precondition import (
    AffinePoint,
    Preconditioner,
    fit_preconditioner,
    laplace,
    warmup_moments,
)
from canonflow.sampling.result import SamplingResult
from canonflow.sampling.targets import (
    TARGETS,
    Banana,
    Funnel,
    GaussianMixture,
    IllConditionedGaussian,
    RingTarget,
    Target,
    get_target,
)
from canonflow.sampling.training import train_sampler

__all__ = [
    "FLOWS",
    "SamplerComparison",
    "compare_samplers",
    "hmc",
    "nuts",
    "METRICS",
    "Metric",
    "initial_points",
    "find_mode",
    "DualAveraging",
    "adaptation_windows",
    "neutra_hmc",
    "neutra_nuts",
    "AffinePoint",
    "Preconditioner",
    "fit_preconditioner",
    "laplace",
    "warmup_moments",
    "flow_mcmc",
    "importance_resample",
    "ImportanceResult",
    "log_weights",
    "FlowSampler",
    "ExpAffineAutoregressive",
    "joint_potential",
    "joint_energy",
    "train_sampler",
    "SamplingResult",
    "ess",
    "ess_bulk",
    "ess_tail",
    "ess_mean",
    "mcse_mean",
    "mcse_sd",
    "mcse_quantile",
    "Bijector",
    "Real",
    "Positive",
    "Interval",
    "Simplex",
    "ParameterSpace",
    "rank_normalize",
    "rhat",
    "moment_errors",
    "sampler_metrics",
    "Target",
    "Funnel",
    "Banana",
    "RingTarget",
    "GaussianMixture",
    "IllConditionedGaussian",
    "TARGETS",
    "get_target",
]
