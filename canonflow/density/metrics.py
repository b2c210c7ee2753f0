"""Metrics of a fitted density model: held-out NLLs (nats, bits/dim) and the learned latent spectrum."""

from __future__ import annotations

import math
from typing import Any

import torch
from nflows.flows import Flow

from canonflow.density.latent import latent_frequencies
from canonflow.density.likelihood import nll
from canonflow.flow import CanonicalFlow, check_flow

__all__ = ["held_out_nll", "latent_spectrum"]


def held_out_nll(
    flow: Flow,
    data: torch.Tensor,
    *,
    num_momenta: int | None = None,
    generator: torch.Generator | None = None,
    log_jacobian: torch.Tensor | None = None,
) -> dict[str, float]:
    """Mean held-out NLL of ``flow`` on ``data`` ``(B, D)`` (cast to the flow's dtype), with its standard error.

    ``num_momenta = K``: ``data`` are configurations ``q`` of a momentum-augmented canonical flow; ``nll`` is the
    corrected upper bound ``(1/B) Σ_b −(1/K) Σ_k log r_{b,k}`` and ``nll_importance_weighted`` the tighter
    ``(1/B) Σ_b −log (1/K) Σ_k r_{b,k}`` of :func:`~canonflow.density.nll` (both with momenta drawn by
    ``generator``, the bound first). ``None``: ``flow`` models ``data`` directly and both are its exact NLL.
    ``nll_stderr`` is ``std_b / √B`` of the per-point bound.

    ``log_jacobian`` ``(B,)``: the log-Jacobian ``log |∂x/∂u|`` of the preprocessing ``u -> x`` of ``data``
    (e.g. dequantized pixels to logits); then ``bits_per_dim`` and ``bits_per_dim_importance_weighted`` give the
    NLL of ``u``, ``mean_b (NLL_b − log_jacobian_b) / (D ln 2)``.

    >>> from canonflow import CanonicalFlow
    >>> flow = CanonicalFlow.build(1).double()
    >>> q = torch.randn(100, 1, dtype=torch.float64)
    >>> sorted(held_out_nll(flow, q, num_momenta=8, log_jacobian=torch.zeros(100)))
    ['bits_per_dim', 'bits_per_dim_importance_weighted', 'nll', 'nll_importance_weighted', 'nll_stderr']
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 2 or len(data) < 2:
        raise ValueError(f"held_out_nll: expected data of shape (B, D) with B >= 2, got {getattr(data, 'shape', data)}")
    if log_jacobian is not None and log_jacobian.shape != data.shape[:1]:
        raise ValueError(
            f"held_out_nll: expected log_jacobian of shape ({len(data)},), got {tuple(log_jacobian.shape)}"
        )
    data = data.to(next(flow.parameters()).dtype)
    if num_momenta is not None:
        bound = nll(flow, data, num_momenta=num_momenta, generator=generator).double()
        weighted = nll(flow, data, num_momenta=num_momenta, importance_weighted=True, generator=generator).double()
    else:
        bound = weighted = nll(flow, data).double()
    entry = {
        "nll": float(bound.mean()),
        "nll_stderr": float(bound.std() / math.sqrt(len(bound))),
        "nll_importance_weighted": float(weighted.mean()),
    }
    if log_jacobian is not None:
        to_bits = 1.0 / (data.shape[1] * math.log(2))
        entry["bits_per_dim"] = float((bound - log_jacobian).mean()) * to_bits
        entry["bits_per_dim_importance_weighted"] = float((weighted - log_jacobian).mean()) * to_bits
    return entry


def latent_spectrum(flow: CanonicalFlow, exact: torch.Tensor | None = None) -> dict[str, Any]:
    """The latent frequencies ``ω`` learned by ``flow``'s base (``scale="mode"``), and their errors.

    One component: ``frequencies``, the sorted ``ω_k`` (:func:`~canonflow.density.latent_frequencies`, ``n``
    values). A mixture of ``K`` components: ``frequencies`` (``K`` rows of ``n``) and ``mixture_weights``
    (``K``). ``exact`` ``(n,)`` (one component only): also ``exact_frequencies`` (sorted) and
    ``frequency_relative_error_mean``/``_max``, the mean and max over ``k`` of ``|ω_k − ω*_k| / ω*_k`` with both
    sorted.

    >>> from canonflow import CanonicalFlow
    >>> latent_spectrum(CanonicalFlow.build(2, base="oscillator"), exact=torch.tensor([2.0, 1.0]))["exact_frequencies"]
    [1.0, 2.0]
    """
    base = check_flow(flow, "latent_spectrum").base
    if base.components > 1:
        if exact is not None:
            raise ValueError("latent_spectrum: exact frequencies can be compared with a one-component base only")
        return {"frequencies": base.frequencies.detach().tolist(), "mixture_weights": base.weights.detach().tolist()}
    learned = latent_frequencies(flow)
    spectrum: dict[str, Any] = {"frequencies": learned.tolist()}
    if exact is not None:
        true = exact.double().sort().values
        relative = ((learned.double() - true) / true).abs()
        spectrum["exact_frequencies"] = true.tolist()
        spectrum["frequency_relative_error_mean"] = float(relative.mean())
        spectrum["frequency_relative_error_max"] = float(relative.max())
    return spectrum
