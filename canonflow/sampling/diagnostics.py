"""Convergence and efficiency diagnostics for MCMC output: split R̂, bulk/tail ESS and Monte Carlo errors.

Follows Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization, folding, and
localization: an improved R̂ for assessing convergence of MCMC". Draws are arrays of shape
``(draws, chains)`` for one scalar quantity (or ``(draws, chains, d)``, handled coordinate-wise).

- *Split* chains: each chain is cut in half, giving ``2m`` chains of ``⌊N/2⌋`` draws, so that a trend within
  a chain shows up as between-chain disagreement.
- *Rank normalization*: pooled ranks ``r`` (ties averaged) of all ``S`` draws are mapped to normal scores
  ``z = Φ⁻¹((r − 3/8)/(S + 1/4))``, which makes R̂ and ESS well defined for heavy tails.
- ``R̂ = √(var⁺/W)`` with ``W`` the mean within-chain variance, ``B/N`` the variance of the chain means and
  ``var⁺ = (N − 1)/N · W + B/N``; the reported split-R̂ is the larger of the rank-normalized split-R̂ of the
  draws and of the *folded* draws ``|x − median(x)|``.
- ``ESS = M N / τ`` with ``τ = 1 + 2 Σ_t ρ_t``, where ``ρ_t = 1 − (W − mean_chain γ_t)/var⁺`` combines the
  FFT autocovariances ``γ_t`` of all chains and the sum is truncated by Geyer's initial positive sequence
  and made monotone (Geyer's initial monotone sequence), exactly as Stan and ArviZ do (equal to ArviZ's
  ``ess`` to rounding, a test when ArviZ is installed). For an AR(1) chain ``x_t = φ x_{t−1} + ε_t``,
  ``ρ_t = φ^t`` and ``τ = (1 + φ)/(1 − φ)``.
- *Bulk* ESS is the ESS of rank-normalized split draws; *tail* ESS is the smaller ESS of the indicators
  ``I(x ≤ q₀.₀₅)`` and ``I(x ≤ q₀.₉₅)``; ``ess_mean`` (no rank normalization) gives the Monte Carlo standard
  error of the mean, ``mcse_mean = √(var/ESS_mean)``.
- ``mcse_sd``: the delta method on ``s = √(mean (x − x̄)²)``: ``MCSE(s) = MCSE(s²)/(2s)``, with ``MCSE(s²)`` the
  ``mcse_mean`` of ``(x − x̄)²``; ``mcse_quantile``: as Vehtari et al. (2021), from the ESS ``S`` of the indicator
  ``I(x ≤ q̂_α)``: the draws at ranks ``N·Beta⁻¹(Φ(∓1); Sα + 1, S(1 − α) + 1)`` bracket ±1 standard error, and half
  their distance is the MCSE.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special, stats

__all__ = [
    "split_chains",
    "rank_normalize",
    "ess",
    "ess_bulk",
    "ess_tail",
    "ess_mean",
    "rhat",
    "mcse_mean",
    "mcse_sd",
    "mcse_quantile",
]

ArrayLike = np.ndarray | torch.Tensor


def _as_draws(x: ArrayLike, who: str) -> np.ndarray:
    """``(draws, chains)`` or ``(draws, chains, d)`` as float64 numpy; ``(draws,)`` is one chain."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim not in (2, 3):
        raise ValueError(f"{who}: expected draws of shape (draws, chains) or (draws, chains, d), got {array.shape}")
    if array.shape[0] < 4:
        raise ValueError(f"{who}: need at least 4 draws per chain, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise ValueError(f"{who}: draws contain NaN or Inf")
    return array


def _per_coordinate(fn, x: np.ndarray) -> np.ndarray | float:  # noqa: ANN001
    if x.ndim == 2:
        return fn(x)
    return np.array([fn(x[:, :, k]) for k in range(x.shape[2])])


def split_chains(x: np.ndarray) -> np.ndarray:
    """``(N, M) -> (⌊N/2⌋, 2M)``: the first and the second half of every chain (a middle draw of odd ``N`` is
    dropped)."""
    half = x.shape[0] // 2
    return np.concatenate([x[:half], x[x.shape[0] - half :]], axis=1)


def rank_normalize(x: np.ndarray) -> np.ndarray:
    """Normal scores ``Φ⁻¹((r − 3/8)/(S + 1/4))`` of the pooled average ranks ``r`` of all ``S`` draws."""
    ranks = stats.rankdata(x, method="average").reshape(x.shape)
    return special.ndtri((ranks - 0.375) / (x.size + 0.25))


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariances ``γ_t = (1/N) Σ_s (x_s − x̄)(x_{s+t} − x̄)`` of every column, by FFT; ``(N, M)``."""
    n = x.shape[0]
    centred = x - x.mean(axis=0)
    size = 2 ** math.ceil(math.log2(2 * n))
    spectrum = np.fft.rfft(centred, n=size, axis=0)
    return np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[:n] / n


def _ess_raw(x: np.ndarray) -> float:
    """ESS of ``(N, M)`` draws: Geyer's initial positive and monotone sequences, as Stan and ArviZ compute it.

    With ``P_k = ρ_{2k} + ρ_{2k+1}``, pairs are read while the previous one is positive (and the lag stays below
    ``N − 1``); the last pair read ends the sequence. ``τ = −1 + 2 Σ_{k<K} P̃_k + ρ_{2K}``, where ``P̃`` is
    the running minimum of the positive pairs ``P_0..P_{K−1}`` and ``ρ_{2K}``, the even lag of the last pair
    read, is added when it is positive or its pair non-negative (Vehtari et al. 2021's tail correction);
    ``τ ≥ 1/log₁₀(NM)``.
    """
    n, m = x.shape
    if np.ptp(x) == 0.0:
        return float("nan")
    acov = _autocovariance(x)
    mean_var = acov[0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + (x.mean(axis=0).var(ddof=1) if m > 1 else 0.0)
    rho = 1.0 - (mean_var - acov.mean(axis=1)) / var_plus
    rho[0] = 1.0
    pairs = [rho[0] + rho[1]]
    k, last_even, last_kept = 1, rho[0], True
    while 2 * k + 1 < n - 1 and pairs[-1] > 0:
        last_even, pair = rho[2 * k], rho[2 * k] + rho[2 * k + 1]
        last_kept = pair >= 0
        pairs.append(pair)
        k += 1
    positive = np.minimum.accumulate(np.asarray(pairs[: k - 1]))
    tail = last_even if (last_kept or last_even > 0) else 0.0
    total = n * m
    tau = max(-1.0 + 2.0 * positive.sum() + tail, 1.0 / math.log10(total))
    return float(total / tau)


def _rhat_raw(x: np.ndarray) -> float:
    n = x.shape[0]
    within = x.var(axis=0, ddof=1).mean()
    between_over_n = x.mean(axis=0).var(ddof=1)
    var_plus = (n - 1) / n * within + between_over_n
    return float(math.sqrt(var_plus / within)) if within > 0 else float("nan")


def ess_bulk(x: ArrayLike) -> np.ndarray | float:
    """Bulk ESS: the ESS of the rank-normalized split chains. ``(N, M)`` -> float, ``(N, M, d)`` -> ``(d,)``."""
    draws = _as_draws(x, "ess_bulk")
    return _per_coordinate(lambda a: _ess_raw(rank_normalize(split_chains(a))), draws)


def ess_tail(x: ArrayLike) -> np.ndarray | float:
    """Tail ESS: ``min`` of the split-chain ESS of ``I(x ≤ q₀.₀₅)`` and ``I(x ≤ q₀.₉₅)``."""

    def tail(a: np.ndarray) -> float:
        split = split_chains(a)
        lower, upper = np.quantile(a, [0.05, 0.95])
        return min(_ess_raw((split <= lower).astype(float)), _ess_raw((split <= upper).astype(float)))

    return _per_coordinate(tail, _as_draws(x, "ess_tail"))


def ess_mean(x: ArrayLike) -> np.ndarray | float:
    """ESS for the mean: split chains, no rank normalization (used for ``mcse_mean``)."""
    return _per_coordinate(lambda a: _ess_raw(split_chains(a)), _as_draws(x, "ess_mean"))


def ess(x: ArrayLike, kind: str = "bulk") -> np.ndarray | float:
    """``ess_bulk``, ``ess_tail`` or ``ess_mean`` of draws ``(N, M)`` or ``(N, M, d)``, chosen by ``kind``."""
    kinds = {"bulk": ess_bulk, "tail": ess_tail, "mean": ess_mean}
    if kind not in kinds:
        raise ValueError(f"ess: unknown kind {kind!r}; choose one of {sorted(kinds)}")
    return kinds[kind](x)


def rhat(x: ArrayLike) -> np.ndarray | float:
    """Rank-normalized split R̂: the larger of R̂ of the rank-normalized split draws and of the folded draws."""

    def one(a: np.ndarray) -> float:
        split = split_chains(a)
        folded = np.abs(split - np.median(split))
        return max(_rhat_raw(rank_normalize(split)), _rhat_raw(rank_normalize(folded)))

    return _per_coordinate(one, _as_draws(x, "rhat"))


def mcse_mean(x: ArrayLike) -> np.ndarray | float:
    """Monte Carlo standard error of the mean, ``√(var/ESS_mean)``."""
    draws = _as_draws(x, "mcse_mean")
    return _per_coordinate(lambda a: math.sqrt(a.var(ddof=1) / _ess_raw(split_chains(a))), draws)


def mcse_sd(x: ArrayLike) -> np.ndarray | float:
    """Monte Carlo standard error of the standard deviation (module docstring), draws ``(N, M)`` or ``(N, M, d)``."""

    def one(a: np.ndarray) -> float:
        squared = (a - a.mean()) ** 2
        if np.ptp(squared) == 0.0:
            return float("nan")
        sd = math.sqrt(squared.mean())
        return math.sqrt(squared.var(ddof=1) / _ess_raw(split_chains(squared))) / (2 * sd)

    return _per_coordinate(one, _as_draws(x, "mcse_sd"))


def mcse_quantile(x: ArrayLike, prob: float) -> np.ndarray | float:
    """Monte Carlo standard error of the ``prob`` quantile (``0 < prob < 1``; module docstring)."""
    if not 0 < prob < 1:
        raise ValueError(f"mcse_quantile: expected 0 < prob < 1, got {prob}")

    def one(a: np.ndarray) -> float:
        flat = np.sort(a.ravel())
        indicator = (split_chains(a) <= np.quantile(flat, prob)).astype(float)
        if np.ptp(indicator) == 0.0:
            return float("nan")
        size = _ess_raw(indicator)
        lower, upper = stats.beta.ppf([0.1586553, 0.8413447], size * prob + 1, size * (1 - prob) + 1)
        low = flat[max(int(math.floor(lower * flat.size)), 0)]
        high = flat[min(int(math.ceil(upper * flat.size)), flat.size - 1)]
        return float((high - low) / 2)

    return _per_coordinate(one, _as_draws(x, "mcse_quantile"))
