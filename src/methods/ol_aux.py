"""OL-AUX: online learning of auxiliary-task weights (Lin, Baweja, Kantor, Held; NeurIPS 2019,
arXiv 1908.05342, "Adaptive Auxiliary Task Weighting for Reinforcement Learning").

Every step holds a batch of every task and minimises L_target + Σ_k w_k L_k. The weights follow the
target's loss after a look-ahead of ``horizon`` steps, to first order: w_k ← w_k + β Σ_steps sim(g_target,
g_k), applied every ``horizon`` steps, where g are the tasks' gradients on the shared parameters. ``sim``
is the paper's inner product scaled by the learning rate (``dot``: β·lr·⟨g_target, g_k⟩), or the cosine
(``cosine``) as in LibMTL's ``OLAUX``, the implementation behind ForkMerge's comparisons, whose settings
are the defaults here (cosine, β = 1e-4, horizon 5, weights starting at 1). No official code was
published. The weights are not clipped (as in both), so an auxiliary whose gradient keeps opposing the
target's can reach a negative weight.
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.flat import cosines
from src.methods.gradient_weighting import GradientWeighting
from src.methods.options import OLAuxConfig


def similarities(shared: Tensor, kind: str, lr: float) -> Tensor:
    """sim(g_target, g_k) for every row k of ``shared`` (row 0 is the target; its own entry is 0)."""
    dots = shared @ shared[0]
    if kind == "cosine":
        out = cosines(shared, shared[0])
    else:
        out = lr * dots
    out[0] = 0.0
    return out


class OLAux(GradientWeighting):
    """Auxiliary weights moved by their gradients' similarity to the target's; options on :class:`OLAuxConfig`.

    A rule on the gradient seam: the step applies Σ_k w_k g_k from the per-task gradients it already took
    (no second backward pass through the network), and the similarities move the weights after it.
    """

    Config = OLAuxConfig
    counters = ("steps",)  # plain-Python state a checkpoint keeps
    distributed = True
    scale_heads = True  # the weights scale each task's loss
    step_option = "method.beta"
    signed = True  # not clipped, as in the paper and LibMTL: an opposing auxiliary may go below 0

    def __init__(self, **options):
        super().__init__(**options)
        self.register_buffer("accumulated", torch.zeros(0))  # β·Σ sim since the last update
        self.steps = 0  # over the whole run; the weights move every ``horizon`` steps

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.accumulated = torch.zeros(len(tasks))

    def coefficients(self, module, grads, step) -> Tensor:
        """This step's weights."""
        return self.w[self.indices(grads.tasks)]

    def update(self, module, grads, coefficients) -> None:
        """β·sim(g_target, g_k) into the running sums; the weights move every ``horizon`` steps."""
        sim = similarities(grads.shared, self.cfg.similarity, module.learning_rate())
        self.observe(self.indices(grads.tasks), sim)

    def observe(self, index: Tensor, sim: Tensor) -> None:
        """Add β·sim to the running sums; every ``horizon`` steps, move the weights by them."""
        self.accumulated.index_add_(0, index, self.cfg.beta * sim.detach().to(self.accumulated))
        self.steps += 1
        if self.steps % self.cfg.horizon == 0:
            self.w = self.w + self.accumulated.to(self.w)
            self.accumulated.zero_()
