"""Uniform multitask training: every task's loss with weight 1, on mixed or sampled batches (``task.batching``)."""

from __future__ import annotations

from src.data.schedule import Step
from src.methods.base import WeightingMethod
from src.methods.options import UniformConfig


class Uniform(WeightingMethod):
    """The standard multitask baseline: minimise the plain sum of the task losses."""

    Config = UniformConfig
    distributed = True
    batchings = ("mixed", "sampled")

    def plan_epoch(self, data, generator) -> list[Step]:
        return self.batched_plan(data, generator)

    def step(self, module, step: Step) -> None:
        module.backward_and_step(self.weighted_sum(module.task_losses(step.data)))
