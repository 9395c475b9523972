"""PCGrad: gradient surgery (Yu, Kumar, Gupta, Levine, Hausman, Finn; NeurIPS 2020, arXiv 2001.06782).

Every step holds a batch of every task. Each task's gradient on the shared parameters is projected onto
the normal plane of each other task's gradient it conflicts with (negative inner product), the others
taken in a random order, and the projected gradients are summed; each head gets its own task's
gradient. The projections come from TorchJD's ``PCGradWeighting``, which expresses the sum as
coefficients on the task gradients (from their Gram matrix): a task's logged weight is its mean
coefficient over the epoch, 1 when nothing conflicts and above 1 when projections add its gradient to
others'.
"""

from __future__ import annotations

from torchjd.aggregation import PCGradWeighting

from src.methods.gradient_weighting import TorchJDWeighting
from src.methods.options import PCGradConfig


class PCGrad(TorchJDWeighting):
    """PCGrad on the shared parameters; no options (the paper has none beyond the optimizer's)."""

    Config = PCGradConfig
    distributed = True
    weighting = PCGradWeighting  # projections in a random order: the global RNG, seeded per epoch
