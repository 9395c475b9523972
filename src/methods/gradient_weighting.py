"""Methods that weight the tasks' gradients in each step (TorchJD's split of a weighting from its aggregator).

A rule maps the step's per-task gradients on the shared parameters (their Gramian, for TorchJD's
weightings) to one coefficient per task; this base takes the gradients, combines them with those
coefficients and applies the combined gradient. A rule's :meth:`coefficients` reads the method's state and
changes nothing, so it can be tested on tensors; what a method learns moves in two hooks the base calls
around the applied step: :meth:`prepare` before it (Auto-Lambda's look-ahead picks this step's λ) and
:meth:`update` after it (GradNorm's and OL-AUX's weights for the next step; by default the coefficients
are logged as the tasks' weights). Each head
gets its own task's gradient, scaled by that task's coefficient when ``scale_heads`` is set (a rule that
weights losses, as HydaLearn's and Auto-Lambda's do) and as it is otherwise (a rule that only reconciles
the shared parameters' gradients, as PCGrad's and GCS's do). A rule file holds its rule and nothing else.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from src.data.schedule import Step
from src.methods.base import WeightingMethod
from src.seam import TaskGradients


class GradientWeighting(WeightingMethod):
    """Per step: per-task gradients → :meth:`coefficients` → one combined step; the coefficients are logged."""

    scale_heads: ClassVar[bool] = False

    def plan_epoch(self, data, generator) -> list[Step]:
        return self.mixed_plan(data, generator)

    def coefficients(self, module, grads: TaskGradients, step: Step) -> Tensor:
        """One coefficient per row of ``grads.shared`` (tasks in ``grads.tasks``' order); changes no state."""
        raise NotImplementedError

    def prepare(self, module, grads: TaskGradients, step: Step) -> None:
        """Before the step's coefficients are taken: a method that picks them by a look-ahead moves here."""

    def update(self, module, grads: TaskGradients, coefficients: Tensor) -> None:
        """After the step: the method's state moves for the next one. By default the coefficients are observed as
        the tasks' weights (their epoch mean becomes the logged weight)."""
        self.observe_weights(self.indices(grads.tasks), coefficients)

    def indices(self, tasks: list[str]) -> Tensor:
        """The rows of ``tasks`` in the method's weights, on their device."""
        return torch.tensor([self.index(t) for t in tasks], device=self.w.device)

    def step(self, module, step: Step) -> None:
        grads = module.task_gradients(module.task_losses(step.data))
        self.prepare(module, grads, step)
        coefficients = self.coefficients(module, grads, step).to(grads.shared)
        heads = {
            t: c * grads.heads[t] if self.scale_heads else grads.heads[t] for t, c in zip(grads.tasks, coefficients)
        }
        module.step_with_gradients(coefficients @ grads.shared, heads)
        self.update(module, grads, coefficients)


class TorchJDWeighting(GradientWeighting):
    """A TorchJD weighting of the Gramian of the shared gradients (``weighting``, set by the subclass)."""

    weighting: ClassVar[type]

    def __init__(self, **options):
        super().__init__(**options)
        self.rule = self.weighting()

    def coefficients(self, module, grads: TaskGradients, step: Step) -> Tensor:
        # the Gramian in the gradients' own precision (autocast would round it to bf16, which a QP solver
        # refuses); process 0's coefficients, so a rule that draws at random (PCGrad's order) steps alike
        with torch.autocast(grads.shared.device.type, enabled=False):
            gramian = grads.shared @ grads.shared.T
        return module.broadcast(self.rule(gramian))
