"""A shared trunk with one head per task: the model every weighting method trains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from src.data.tasks import TaskSpec
from src.models.conditioning import conditioner
from src.schema import ConfigError


class MultiTaskModel(nn.Module):
    """``trunk(batch)`` gives the shared representation; ``heads[task]`` maps it to the task's outputs.

    Args:
        trunk: module taking a collated batch (a dict) and returning ``[B, hidden]`` features.
        hidden: size of the trunk's output.
        tasks: the training tasks; one head each, but a task whose spec names another's ``head`` trains through
            that task's head (which must be in the run, with as many outputs).
        head_hidden: width of a hidden layer in each head (``None``: a linear head).
        dropout: dropout before each head's layers.
        condition: ``model.net.condition`` (:class:`src.schema.ConditionConfig`): FiLM on the trunk, conditioned on
            the auxiliaries' weights (``method=conditional``); off by default.
    """

    def __init__(
        self,
        trunk: nn.Module,
        hidden: int,
        tasks: Sequence[TaskSpec],
        head_hidden: int | None = None,
        dropout: float = 0.0,
        condition: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.trunk = trunk
        owners = {t.name: t for t in tasks}
        for t in tasks:
            owner = owners.get(t.head) if t.head is not None else t
            if owner is None or owner.head is not None or owner.num_outputs != t.num_outputs:
                why = (
                    "is not a task of this run" if owner is None else "trains through another's head itself"
                    if owner.head is not None else f"has {owner.num_outputs} outputs, {t.name} {t.num_outputs}"
                )  # fmt: skip
                raise ConfigError(f"task.tasks.{t.name}.head={t.head!r}: {t.head} {why}")
        self.head_of = {t.name: t.head or t.name for t in tasks}  # task → the task whose head it trains through
        self.heads = nn.ModuleDict(
            {t.name: _head(hidden, t.num_outputs, head_hidden, dropout) for t in tasks if t.head is None}
        )
        self.conditioner = conditioner(trunk, [t.name for t in tasks[1:]], condition)

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """Trainable parameters every task's loss reaches by their full name: the trunk's (``trunk.…``) and its
        conditioner's (``conditioner.…``)."""
        out = {f"trunk.{n}": p for n, p in self.trunk.named_parameters() if p.requires_grad}
        if self.conditioner is not None:
            out.update({f"conditioner.{n}": p for n, p in self.conditioner.named_parameters() if p.requires_grad})
        return out

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """Trainable parameters of ``task``'s head by their full name (``heads.<task>.…``; a task that trains through
        another's head: that head's)."""
        head = self.head_of.get(task, task)
        return {f"heads.{head}.{n}": p for n, p in self.heads[head].named_parameters() if p.requires_grad}

    def features(self, batch: dict[str, Tensor]) -> Tensor:
        return self.trunk(batch)

    def forward(self, task: str, batch: dict[str, Tensor]) -> Tensor:
        return self.heads[self.head_of.get(task, task)](self.trunk(batch))


def _head(hidden: int, out: int, head_hidden: int | None, dropout: float) -> nn.Module:
    if head_hidden is None:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, out))
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(hidden, head_hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(head_hidden, out)
    )
