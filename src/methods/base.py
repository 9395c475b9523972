"""The small base class every weighting method builds on.

A method owns its state (task weights and whatever else it learns), plans each epoch's schedule
(mixed batches, per-task blocks, the target alone) and interprets each training step. The
LightningModule delegates to it and knows nothing of any particular method, so adding a method is
one file here, one YAML in ``conf/method/`` and its tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from src.data.schedule import DEV, Step, chunks, finish, sample
from src.data.tasks import TaskSpec

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from src.module import MultiTaskModule


class WeightingMethod:
    """Base class: task weights, the epoch schedule, and the per-step update.

    Subclasses implement :meth:`plan_epoch` and :meth:`step`, and may extend :meth:`end_epoch`
    (per-epoch bookkeeping, returning what to log), :meth:`state_dict` and :meth:`load_state_dict`.
    """

    def __init__(self, schema: type | None = None, **options: Any) -> None:
        """``schema`` is the method's ``Config``: it validates ``options`` and holds their defaults, which
        become attributes of the method (one place for each default)."""
        if schema is not None:
            checked = schema(**options)
            for f in fields(schema):
                if f.name != "_target_":
                    setattr(self, f.name, getattr(checked, f.name))
        self.tasks: list[TaskSpec] = []
        self.target = ""
        self.w = torch.ones(0)
        self.history: list[dict[str, float]] = []

    # --- set-up ---------------------------------------------------------------------------------
    def setup(self, tasks: Sequence[TaskSpec], target: str) -> None:
        """Bind the method to its tasks (the target first) before training starts."""
        if not tasks or tasks[0].name != target:
            raise ValueError("tasks must list the target first")
        self.tasks, self.target = list(tasks), target
        self.w = torch.ones(len(tasks))
        self.history = []

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def check_trainer(self, trainer: pl.Trainer) -> None:
        """Reject trainer settings the method cannot work with (with what to do instead)."""

    # --- schedule ------------------------------------------------------------------------------
    def plan_epoch(self, sizes: Mapping[str, int], batch_size: int, generator: torch.Generator) -> list[Step]:
        """The steps of one epoch, from the split sizes (``sizes[DEV]`` is the dev split's)."""
        raise NotImplementedError

    def mixed_plan(
        self, sizes: Mapping[str, int], batch_size: int, generator: torch.Generator, with_dev: bool = False
    ) -> list[Step]:
        """Each step holds a batch of every task (and of dev when ``with_dev``).

        An epoch is one pass over the target's training data; every auxiliary contributes as many
        examples, drawn afresh each epoch without replacement (repeating only when it is smaller),
        which also caps what a large auxiliary costs per epoch.
        """
        target = chunks(torch.randperm(sizes[self.target], generator=generator), batch_size)
        n = sizes[self.target]
        per_task = {t: chunks(sample(sizes[t], n, generator), batch_size) for t in self.names[1:]}
        if with_dev:
            per_task[DEV] = chunks(sample(sizes[DEV], n, generator), batch_size)
        steps = [Step(indices={self.target: b, **{t: c[i] for t, c in per_task.items()}}) for i, b in enumerate(target)]
        return finish(steps)

    # --- training ------------------------------------------------------------------------------
    def training_step(self, module: MultiTaskModule, step: Step) -> None:
        """Run one planned step; at the epoch's last step, close the epoch and log its record."""
        self.step(module, step)
        if step.last_in_epoch:
            extra = self.end_epoch(module)  # first: a method may set its weights here
            record = {f"weight/{t}": float(w) for t, w in zip(self.names, self.w)}
            record.update(extra)
            self.history.append(record)
            module.log_dict(record, on_step=False, on_epoch=True, batch_size=1)

    def step(self, module: MultiTaskModule, step: Step) -> None:
        raise NotImplementedError

    def end_epoch(self, module: MultiTaskModule) -> dict[str, float]:
        """Per-epoch bookkeeping after the last step; returns extra scalars for the log and history.

        Keys ``prefix/task`` become ``<prefix>_history`` in results.json; use ``method/<name>`` for scalars.
        """
        return {}

    # --- helpers for subclasses ----------------------------------------------------------------
    def task_losses(self, module: MultiTaskModule, data: Mapping[str, Any]) -> dict[str, Tensor]:
        """Mean loss of each task present in ``data`` (the dev batch excluded), logged per step."""
        losses = {t: module.loss(t, data[t]).mean() for t in self.names if t in data}
        for t, loss in losses.items():
            module.log(f"train/loss/{t}", loss, on_step=True, on_epoch=True, batch_size=len(data[t]["labels"]))
        return losses

    def weighted_sum(self, losses: Mapping[str, Tensor]) -> Tensor:
        index = {t: i for i, t in enumerate(self.names)}
        return sum(self.w[index[t]].to(loss) * loss for t, loss in losses.items())

    @staticmethod
    def optimizer_step(module: MultiTaskModule, loss: Tensor) -> None:
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss is {loss.item()}; lower the learning rate")
        opt = module.optimizers()
        opt.zero_grad()
        module.manual_backward(loss)
        opt.step()

    # --- state ---------------------------------------------------------------------------------
    def weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in zip(self.names, self.w)}

    def histories(self) -> dict[str, list[dict[str, float]]]:
        """Per-epoch records grouped by key prefix: ``weight/left`` → ``weight_history[e]["left"]``.

        Keys without a prefix (such as αVIL's dev losses) go to ``method_history``.
        """
        out: dict[str, list[dict[str, float]]] = {"weight_history": []}
        for record in self.history:
            grouped: dict[str, dict[str, float]] = {"weight_history": {}}
            for key, value in record.items():
                prefix, _, name = key.rpartition("/")
                grouped.setdefault(f"{prefix or 'method'}_history", {})[name] = value
            for k, v in grouped.items():
                out.setdefault(k, []).append(v)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.w = state["w"].clone()
        self.history = list(state["history"])
