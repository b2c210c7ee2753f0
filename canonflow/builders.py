"""Builders for standard stacks of canonical layers."""

from __future__ import annotations

from canonflow.nn import IrrotationalMLP
from canonflow.transforms import LinearSymplectic, MomentumShear, PositionShear, SymplecticComposite, ZeroCenter
from canonflow.validation import check_positive_int

__all__ = ["canonical_flow"]


def canonical_flow(
    n: int,
    blocks: int = 4,
    hidden: int = 64,
    householder: int | None = None,
    full_linear: bool = False,
    zero_center: bool = True,
    activation: str = "tanh",
) -> SymplecticComposite:
    """The standard canonical flow on ``(B, 2n)``: a ``SymplecticComposite`` (an nflows ``CompositeTransform``) of

    ``ZeroCenter`` (if ``zero_center``), then ``blocks`` times
    ``LinearSymplectic(n, householder, full_linear) -> MomentumShear(IrrotationalMLP(n, hidden))
    -> PositionShear(IrrotationalMLP(n, hidden))``.

    ``forward`` maps data to latent, ``inverse`` latent to data; ``logabsdet`` is identically zero.

    >>> import torch
    >>> from canonflow.testing import symplectic_defect
    >>> flow = canonical_flow(2, blocks=2, hidden=16).double().eval()  # eval: ZeroCenter uses its running mean
    >>> x = torch.randn(5, 4, dtype=torch.float64)
    >>> z, logabsdet = flow(x)
    >>> z.shape, logabsdet.abs().max().item()
    (torch.Size([5, 4]), 0.0)
    >>> bool((flow.inverse(z)[0] - x).abs().max() < 1e-12)
    True
    >>> bool(symplectic_defect(flow, x).max() < 1e-10)
    True
    """
    who = "canonical_flow"
    check_positive_int(n, "n", who)
    check_positive_int(blocks, "blocks", who)
    check_positive_int(hidden, "hidden", who)
    layers = [ZeroCenter(n)] if zero_center else []
    for _ in range(blocks):
        layers += [
            LinearSymplectic(n, householder=householder, full=full_linear),
            MomentumShear(IrrotationalMLP(n, hidden, activation)),
            PositionShear(IrrotationalMLP(n, hidden, activation)),
        ]
    return SymplecticComposite(layers)
