"""Uncertainty weighting (Kendall, Gal, Cipolla; CVPR 2018, arXiv 1705.07115).

Every step holds a batch of every task. Each task has a learned log-variance s_t; the loss is
Σ_t L_t / (2·exp(s_t)) + s_t / 2, minimised over the model and the s_t together by the model's optimizer
(the s_t without weight decay). A task whose loss stays large is down-weighted; the s_t / 2 term keeps
every weight from going to 0. The method treats all tasks alike: it knows nothing of the target. The
form and the initial s_t = −0.5 follow LibMTL's ``UW`` (as used in ForkMerge's comparisons); a task's
logged weight is 1 / (2·exp(s_t)) at the epoch's end.
"""

from __future__ import annotations

import torch
from torch import nn

from src.data.schedule import Step
from src.methods.base import WeightingMethod
from src.methods.options import UncertaintyConfig


def uncertainty_loss(losses: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Σ_t L_t / (2·exp(s_t)) + s_t / 2."""
    return (losses / (2 * log_variance.exp()) + log_variance / 2).sum()


class Uncertainty(WeightingMethod):
    """Learned homoscedastic-uncertainty weights; options on :class:`UncertaintyConfig`."""

    Config = UncertaintyConfig
    distributed = True
    batchings = ("mixed", "sampled")  # a weighted sum of the losses present in a step

    def __init__(self, **options):
        super().__init__(**options)
        self.log_variance = nn.Parameter(torch.zeros(0))  # trained by the model's optimizer

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.log_variance = nn.Parameter(torch.full((len(tasks),), float(self.cfg.init_log_variance)))
        self.w = self.current_weights()

    def current_weights(self) -> torch.Tensor:
        return (1 / (2 * self.log_variance.detach().exp())).to(self.w.dtype if self.w.numel() else torch.float32)

    def plan_epoch(self, data, generator) -> list[Step]:
        return self.batched_plan(data, generator)

    def step(self, module, step: Step) -> None:
        losses = module.task_losses(step.data)
        index = [self.index(t) for t in losses]
        stacked = torch.stack(list(losses.values()))
        module.backward_and_step(uncertainty_loss(stacked, self.log_variance[index].to(stacked)))

    def end_epoch(self, module) -> dict[str, float]:
        self.w = self.current_weights().to(self.w)
        return {f"log_variance/{t}": float(s) for t, s in zip(self.names, self.log_variance.detach())}
