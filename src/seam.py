"""What a weighting method may ask of the LightningModule: the seam between ``src/methods/`` and ``src/module.py``.

A method is handed the module at each step (:meth:`src.methods.base.WeightingMethod.training_step`) and calls
only what :class:`Seam` lists: losses, gradients per task or per example, one optimizer step, parameters moved
for a look-ahead, reductions over the processes, and Lightning's own logging and state. The module implements it
(:class:`src.module.MultiTaskModule`); a test checks that every ``module.<name>`` a method uses is listed here and
that the module has each. A leaf: the methods import it for their types instead of the module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor, nn

if TYPE_CHECKING:
    import pytorch_lightning as pl
    import torch

    from src.data.tasks import TaskSpec
    from src.models.multitask import MultiTaskModel


@dataclass
class TaskGradients:
    """Per-task gradients: ``shared[i]`` is task ``tasks[i]``'s on the trunk (flat), ``heads[t]`` on t's head;
    ``losses[i]`` is the whole step's mean loss of task ``tasks[i]`` (detached), for rules that read it (GradNorm)."""

    tasks: list[str]
    shared: Tensor
    heads: dict[str, Tensor]
    losses: Tensor | None = None


class Seam(Protocol):
    # --- the model and the run, as Lightning holds them
    model: MultiTaskModel  # shared trunk and one head per task
    specs: dict[str, TaskSpec]  # each task's kind, head and metric
    seed: int
    warnings: list[str]  # what looks wrong with the run, in results.json
    trainer: pl.Trainer
    current_epoch: int
    device: torch.device

    def log(self, name: str, value: Any, **kwargs: Any) -> None: ...
    def log_dict(self, values: Mapping[str, Any], **kwargs: Any) -> None: ...
    def optimizers(self) -> Any: ...

    # --- losses and gradients
    def loss(self, task: str, batch: dict[str, Tensor]) -> Tensor:
        """Per-example loss of ``task`` on ``batch``."""

    def task_losses(self, data: Mapping[str, Any]) -> dict[str, Tensor]:
        """Mean loss of each training task present in ``data`` (the dev batch left out), logged per step."""

    def grad(self, loss: Tensor, params: Sequence[Tensor], **kwargs: Any) -> tuple[Tensor | None, ...]:
        """``torch.autograd.grad(loss, params)``, counted as a backward pass (α-steps, look-aheads)."""

    def task_gradients(self, losses: Mapping[str, Tensor]) -> TaskGradients:
        """Each task's gradient on the shared parameters (one row per task) and on its own head."""

    def example_gradients(self, task: str, batch: Mapping[str, Tensor]) -> Tensor:
        """Each example's gradient of ``task``'s loss on the shared parameters: ``[examples, shared]`` (SLGrad)."""

    # --- parameters and steps
    def trainable(self) -> list[nn.Parameter]:
        """Every trainable parameter, in the order the optimizer holds them."""

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """The trunk's trainable parameters by name: what every task's gradient lands on."""

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """The trainable parameters of ``task``'s head by name: only its own loss reaches them."""

    def backward_and_step(self, loss: Tensor) -> None:
        """``manual_backward(loss)`` and one optimizer step; a non-finite loss stops the run with a clear error."""

    def step_with_gradients(self, shared: Tensor, heads: Mapping[str, Tensor]) -> None:
        """One optimizer step with ``shared`` as the trunk's gradient and ``heads[t]`` as task t's head's."""

    def learning_rate(self) -> float:
        """The learning rate of this step (the schedule's factor applied): what look-ahead steps take."""

    def evaluating(self) -> AbstractContextManager[None]:
        """Inside the block the model is in eval mode (no dropout); its mode is restored after."""

    def displaced(self, moves: Sequence[tuple[Sequence[nn.Parameter], Tensor]]) -> AbstractContextManager[None]:
        """Inside the block, each ``(params, flat)`` pair's parameters are moved by ``flat``; restored after."""

    # --- several processes: what every rank must agree on
    @property
    def world(self) -> int:
        """The number of processes training together (1 without a trainer)."""

    def global_mean(self, values: Tensor, key: str) -> Tensor:
        """``values.mean()`` over this process's shard of ``key``, scaled so that its mean over the processes is the
        mean over the whole step's examples."""

    def reduce_mean(self, value: Tensor) -> Tensor:
        """The mean of ``value`` over the processes (itself on one)."""

    def reduce_sum(self, value: Tensor) -> Tensor:
        """The sum of ``value`` over the processes (itself on one)."""

    def step_size(self, key: str, local: int) -> int:
        """The whole step's number of ``key`` examples (``local``, this process's, on one process)."""

    def gather_shards(self, value: Tensor, key: str) -> Tensor:
        """The rows of every process's shard of ``key`` in the whole step's order (DIW's features)."""

    def own_shard(self, value: Tensor, key: str) -> Tensor:
        """This process's rows of a whole-step tensor of ``key`` (the inverse of :meth:`gather_shards`)."""

    def broadcast(self, value: Tensor) -> Tensor:
        """Process 0's ``value`` on every process: for a choice drawn at random (PCGrad's order)."""
