"""GCS: gradient cosine similarity (Du, Czarnecki, Jayakumar, Farajtabar, Pascanu, Lakshminarayanan;
arXiv 1812.02224, "Adapting auxiliary losses using gradient similarity").

Every step holds a batch of every task. On the shared parameters the update is the target's gradient
plus each auxiliary's gradient where its cosine with the target's is positive (``unweighted``, the paper's
main rule), or scaled by that cosine (``weighted``); each head gets its own task's gradient. A task's
logged weight is its mean coefficient over the epoch (the fraction of steps it counted, under
``unweighted``). The cosine is over the whole shared gradient, as in LibMTL's ``GCS`` (used in ForkMerge's
comparisons).
"""

from __future__ import annotations

from torch import Tensor

from src.flat import cosines
from src.methods.gradient_weighting import GradientWeighting
from src.methods.options import GCSConfig


def gcs_coefficients(shared: Tensor, variant: str) -> Tensor:
    """Each task's coefficient: 1 for the target (row 0), the gated cosine with it for the others."""
    target = shared[0]
    cos = cosines(shared, target)
    coefficients = (cos > 0).to(shared.dtype) if variant == "unweighted" else cos.clamp_min(0)
    coefficients[0] = 1.0
    return coefficients


class GCS(GradientWeighting):
    """Auxiliary gradients gated by their cosine with the target's; options on :class:`GCSConfig`."""

    Config = GCSConfig
    distributed = True

    def coefficients(self, module, grads, step) -> Tensor:
        return gcs_coefficients(grads.shared, self.cfg.variant)
