"""Phase-space density estimation and variational free energies with canonical flows.

A canonical flow ``T`` (data ``x`` -> latent ``z``) has unit Jacobian, so the model density is the base density
pulled back, ``log q_θ(x) = log p(T(x))``: exact likelihoods with no log-determinant. The model is a
:class:`~canonflow.CanonicalFlow` (``CanonicalFlow.build(n, ..., base="oscillator")``); this package fits it:

- **Maximum likelihood** (:func:`fit_density`) on phase-space data ``(B, 2n)`` or on configurations ``(B, n)``
  augmented with momenta ``p ~ N(0, I)`` (:mod:`canonflow.density.likelihood` states the objective and the
  corrected NLL :func:`nll`; :func:`held_out_nll` reports it on test data, also in bits/dim).
- **Variational free energy** (:func:`fit_variational`) of ``e^{−βH}/Z`` by the reverse KL (gradient norm
  clipped at :data:`DEFAULT_GRAD_CLIP` unless a ``TrainConfig`` says otherwise; optional forward-KL term and
  ``β`` annealing); estimate ``F_var``, ``F_IS`` and the ESS with :func:`canonflow.estimators.free_energy`. The
  fitted flow is a sampler too: ``canonflow.sampling.flow_mcmc(flow, V, ...)`` for ``H = |p|²/2 + V(q)``.
- **Latent analysis** (:mod:`canonflow.density.latent`): with an oscillator base the model is the Boltzmann
  distribution of ``K∘T``, ``K = Σ_k ω_k (Q_k² + P_k²)/2``; :func:`latent_frequencies` reads off ``ω_k`` and
  :func:`latent_dependence` measures how observables depend on each latent coordinate; :func:`latent_spectrum`
  compares ``ω`` with exact frequencies.
- **Reference runs** (:mod:`canonflow.density.reference_runs`): ``canonflow free-energy``, ``density`` and the banana
  demo as functions of their preset, and the results entries of any fitted flow.

All losses and estimates are in nats.
"""

from canonflow.density.fit import DEFAULT_GRAD_CLIP, fit_density, fit_variational
from canonflow.density.latent import latent_dependence, latent_frequencies
from canonflow.density.likelihood import augment_momenta, gaussian_nll, nll
from canonflow.density.metrics import held_out_nll, latent_spectrum

__all__ = [
    "DEFAULT_GRAD_CLIP",
    "fit_density",
    "fit_variational",
    "nll",
    "held_out_nll",
    "augment_momenta",
    "gaussian_nll",
    "latent_frequencies",
    "latent_spectrum",
    "latent_dependence",
]
