"""HydaLearn: highly dynamic task weighting (Verboven, Chaudhary, Berrevoets, Verbeke, Baesens;
Applied Intelligence 2022, arXiv 2008.11643).

Every step holds a batch of every task, and each step sets its own weights from each task's *gain* on the
target: the drop in the target's loss on this step's target batch after a trial update of the model with
that task's gradient alone, θ − η·g_k (η the optimizer's learning rate, or ``lookahead_lr``). The target
keeps weight 1 and an auxiliary gets its gain relative to the target's own, w_k = max(gain_k, 0) / gain_target,
capped at ``max_weight``; if the target's own trial step does not lower its loss, the auxiliaries get 0.

The official repository has no implementation; this is our reading of the paper's method section:
gains are measured with plain gradient steps in eval mode (no dropout noise in the comparison), a trial
update moves the shared parameters and, for the target, its own head (an auxiliary's head cannot change
the target's loss), and the weights enter as coefficients on the gradients already taken, so a step costs
one backward per task and one forward per task on the target batch. The cap is ours (the ratio is
unbounded when the target's gain is near 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.methods.gradient_weighting import GradientWeighting
from src.methods.options import HydaLearnConfig


def gain_weights(gains: Tensor, max_weight: float) -> Tensor:
    """Weights from gains (row 0 the target's): 1 for the target, max(gain, 0) / gain_target capped, or 0."""
    if not gains[0] > 0:
        weights = torch.zeros_like(gains)
    else:
        weights = (gains.clamp_min(0) / gains[0]).clamp_max(max_weight)
    weights[0] = 1.0
    return weights


class HydaLearn(GradientWeighting):
    """Per-step weights from each task's trial-update gain on the target; options on :class:`HydaLearnConfig`."""

    Config = HydaLearnConfig
    distributed = True
    scale_heads = True  # the weights scale each task's loss
    step_option = "method.lookahead_lr (or model.optimizer.lr, its default)"

    def gains(self, module, grads, batch) -> Tensor:
        """The target's loss drop on ``batch`` after a trial step with each task's gradient."""
        lr = self.cfg.lookahead_lr or module.learning_rate()
        shared = list(module.shared_parameters().values())
        head = list(module.task_parameters(self.target).values())
        with module.evaluating(), torch.no_grad():
            before = module.global_mean(module.loss(self.target, batch), self.target)
            out = []
            for i, task in enumerate(grads.tasks):
                moves = [(shared, -lr * grads.shared[i])]
                if task == self.target:
                    moves.append((head, -lr * grads.heads[task]))
                with module.displaced(moves):
                    out.append(before - module.global_mean(module.loss(self.target, batch), self.target))
        return module.reduce_mean(torch.stack(out).float())  # the whole step's target batch

    def coefficients(self, module, grads, step) -> Tensor:
        return gain_weights(self.gains(module, grads, step.data[self.target]), self.cfg.max_weight)
