"""Single-task training: the target alone; auxiliary heads and data are never touched."""

from __future__ import annotations

import torch

from src.data.schedule import Step
from src.methods.base import WeightingMethod
from src.methods.options import SingleTaskConfig


class SingleTask(WeightingMethod):
    """The baseline every weighting method must beat: train on the target only."""

    Config = SingleTaskConfig
    distributed = True
    schedule = "target"

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.w = torch.tensor([1.0] + [0.0] * (len(tasks) - 1))

    def plan_epoch(self, data, generator) -> list[Step]:
        return self.target_plan(data, generator)

    def step(self, module, step: Step) -> None:
        module.backward_and_step(module.task_losses(step.data)[self.target])
