"""Fixed task weights: every task's loss with a weight set in the config, on mixed or sampled batches.

The reference every learned weighting is measured against: a sweep over fixed weights
(``experiment=oracle``) and the best of them chosen on the target's dev split is the *oracle* a
weighting method should come close to. ``uniform`` is this method with every weight 1.
"""

from __future__ import annotations

import torch

from src.methods.options import StaticConfig
from src.methods.uniform import Uniform


class Static(Uniform):
    """Σ_t w_t · L_t with fixed ``weights``; the options are documented on :class:`StaticConfig`."""

    Config = StaticConfig

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        if unknown := sorted(set(self.cfg.weights) - set(self.names)):
            raise ValueError(
                f"method.weights names {', '.join(map(repr, unknown))}, not a training task of this run "
                f"({', '.join(self.names)})"
            )
        if self.cfg.weights.get(target, 1.0) == 0:
            raise ValueError(f"method.weights.{target}=0: the target's own weight must be above 0")
        default = {t: 1.0 if t == target else self.cfg.aux_weight for t in self.names}
        self.w = torch.tensor([float(self.cfg.weights.get(t, default[t])) for t in self.names])
