"""GradNorm: gradient normalisation for adaptive loss balancing (Chen, Badrinarayanan, Lee, Rabinovich;
ICML 2018, arXiv 1711.02257).

Every step holds a batch of every task. Each task k has a weight w_k (all 1 at the start; they sum to T,
the number of tasks) and the model steps on Σ_k w_k L_k. The weights then take their own step on the
gradient-norm loss

    L_grad = Σ_k | w_k ‖∇_W L_k‖ − Ḡ · r_k^α |,   Ḡ = mean_k w_k ‖∇_W L_k‖,   r_k = L̃_k / mean_j L̃_j,

where L̃_k = L_k / L_k(0) is the task's loss relative to its first step's (its inverse training rate) and the
target Ḡ · r_k^α is held constant, as in the paper; afterwards the weights are renormalised to sum to T. A
task that trains slower than the others (higher r_k) is pushed towards a larger gradient norm, α setting
how strongly (the paper's 1.5 for NYUv2-like settings; 0 balances the norms alone).

Our reading, where the paper leaves a choice: W is every shared parameter (the per-task gradients the
module already takes), not only the last shared layer, so one step costs one backward per task and no
more; ∂L_grad/∂w_k = sign(w_k‖∇L_k‖ − Ḡ r_k^α) · ‖∇L_k‖ is taken exactly (Ḡ held constant) and applied by
plain gradient descent with step size ``lr`` (ours; the paper does not give one for this model), and a
weight is kept at least ``min_weight`` (ours) before the renormalisation.

GradNorm balances every task, the target included: it is not a target-task method, and neither the paper
nor a later paper we know of gives it a target-task variant. It is here as the balancing baseline the
reference literature compares against (SLGrad's paper among them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.methods.gradient_weighting import GradientWeighting
from src.methods.options import GradNormConfig


def gradnorm_update(
    weights: Tensor, norms: Tensor, relative_losses: Tensor, alpha: float, lr: float, min_weight: float
) -> Tensor:
    """GradNorm's weights after one step on L_grad (tasks in rows), renormalised to sum to their number.

    ``norms[k]`` is ‖∇L_k‖ on the shared parameters and ``relative_losses[k]`` is L_k / L_k(0).
    """
    rate = relative_losses / relative_losses.mean()
    scaled = weights * norms
    target = scaled.mean() * rate**alpha  # held constant
    grad = torch.sign(scaled - target) * norms
    new = (weights - lr * grad).clamp_min(min_weight)
    return new * (len(new) / new.sum())


class GradNorm(GradientWeighting):
    """Weights that balance the tasks' gradient norms by their training rates; options on :class:`GradNormConfig`."""

    Config = GradNormConfig
    distributed = True
    scale_heads = True  # the weights scale each task's loss
    step_option = "method.lr"
    floor_option = "method.min_weight"

    def __init__(self, **options):
        super().__init__(**options)
        self.register_buffer("initial_losses", torch.zeros(0))  # L_k(0); NaN until a task's first step

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.initial_losses = torch.full((len(tasks),), float("nan"))

    def coefficients(self, module, grads, step) -> Tensor:
        """This step's weights: the network steps with them."""
        return self.w[self.indices(grads.tasks)].clone()

    def update(self, module, grads, coefficients) -> None:
        """The weights' own step on L_grad, for the next step."""
        index = self.indices(grads.tasks)
        losses = grads.losses.to(self.initial_losses)
        first = torch.isnan(self.initial_losses[index])
        self.initial_losses[index[first]] = losses[first]
        relative = losses / self.initial_losses[index].clamp_min(torch.finfo(losses.dtype).tiny)
        norms = grads.shared.float().norm(dim=1).to(self.w)
        if bool(torch.isfinite(norms).all() and torch.isfinite(relative).all()) and len(index) == len(self.w):
            self.w = gradnorm_update(self.w, norms, relative, self.cfg.alpha, self.cfg.lr, self.cfg.min_weight)
