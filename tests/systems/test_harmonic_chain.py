"""``canonflow/systems/harmonic_chain.py``: normal modes, exact free energy, the Boltzmann sampler."""

from __future__ import annotations

import math

import pytest
import torch
from randomness import Z_SCORE, gen

from canonflow.phase_space import split
from canonflow.systems import HarmonicChain


def test_harmonic_chain_free_energy_and_modes() -> None:
    chain = HarmonicChain(32)
    assert chain.free_energy(1.0) == pytest.approx(-57.0638, abs=5e-5)
    w = chain.normal_mode_frequencies()
    assert chain.free_energy(2.0) == pytest.approx(float(torch.log(2.0 * w / (2 * math.pi)).sum()) / 2.0)
    v = chain.normal_modes()
    assert torch.allclose(v.T @ v, torch.eye(32, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(v.T @ chain.stiffness_matrix() @ v, torch.diag(w**2), atol=1e-12)
    # the numerical spectrum of κL agrees
    stiff = HarmonicChain(5, kappa=2.0)
    eig = torch.linalg.eigvalsh(stiff.stiffness_matrix())
    assert torch.allclose(eig.sqrt(), stiff.normal_mode_frequencies(), atol=1e-12)
    x = stiff.sample_initial(3, generator=gen(13))
    assert torch.allclose(stiff.mode_energies(x).sum(-1), stiff(x), rtol=1e-12)


@pytest.mark.statistical
def test_harmonic_chain_boltzmann_sampler() -> None:
    chain = HarmonicChain(4, kappa=1.5)
    beta = 2.0
    x = chain.sample_boltzmann(40000, beta=beta, generator=gen(14))
    q, p = split(x)
    cov_q = q.T @ q / q.shape[0]
    exact = torch.linalg.inv(beta * chain.stiffness_matrix())

    # entries of a sample covariance of N zero-mean Gaussian draws have variance (Σ_ii Σ_jj + Σ_ij²) / N
    def se(cov: torch.Tensor) -> torch.Tensor:
        return ((torch.outer(cov.diagonal(), cov.diagonal()) + cov**2) / x.shape[0]).sqrt()

    assert ((cov_q - exact).abs() <= Z_SCORE * se(exact)).all()
    exact_p = torch.eye(4, dtype=torch.float64) / beta
    assert ((p.T @ p / p.shape[0] - exact_p).abs() <= Z_SCORE * se(exact_p)).all()
    assert chain(x).mean().item() == pytest.approx(chain.n / beta, rel=0.02)  # equipartition
