"""The LightningModule: a shared model, per-task metrics, and a weighting method that drives training.

It uses manual optimization and hands every training step to the method, which also plans the
epoch's schedule. Lightning keeps the loop, progress bars, checkpoints, loggers and devices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from src.data.schedule import Step
from src.data.tasks import TaskSpec, headline_value
from src.methods.base import WeightingMethod
from src.models.multitask import MultiTaskModel

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
MONITOR = "dev/score"  # the target's headline dev metric; ModelCheckpoint watches it


class MultiTaskModule(pl.LightningModule):
    """Trains ``model`` on several tasks under ``method``; validates and selects on the target's dev split.

    Args:
        model: shared trunk and one head per task.
        method: the weighting method, already set up with the tasks.
        tasks: the training tasks, the target first.
        optimizer: builds the optimizer from the parameters (a ``_partial_`` Hydra object).
        seed: with the epoch number, seeds the global RNG at each epoch start, so a run resumed at an
            epoch boundary replays exactly what an uninterrupted run does (dropout included).
    """

    def __init__(self, model: MultiTaskModel, method: WeightingMethod, tasks: Sequence[TaskSpec],
                 optimizer: OptimizerFactory, seed: int = 0):
        super().__init__()
        self.automatic_optimization = False
        self.model, self.method, self.optimizer_factory, self.seed = model, method, optimizer, seed
        self.specs = {t.name: t for t in tasks}
        self.target = tasks[0].name
        self.dev_metrics = tasks[0].make_metrics()
        self.test_metrics = nn.ModuleDict({t.name: t.make_metrics() for t in tasks})
        self.dev_scores: list[float] = []
        self.epoch_seconds: list[float] = []
        self.test_results: dict[str, dict[str, float]] = {}
        self._epoch_start = 0.0

    # --- what methods call ---------------------------------------------------------------------
    def loss(self, task: str, batch: dict[str, Tensor]) -> Tensor:
        """Per-example loss of ``task`` on ``batch``."""
        return self.specs[task].loss(self.model(task, batch), batch["labels"])

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    # --- Lightning hooks ------------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.trainable())

    def on_fit_start(self) -> None:
        self.method.check_trainer(self.trainer)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_start(self, batch: Step, batch_idx: int) -> None:
        if batch_idx == 0:  # seeded here, after the loader's iterator has drawn its own seed
            torch.manual_seed(self.seed * 1_000_003 + self.current_epoch)

    def training_step(self, step: Step, batch_idx: int) -> None:
        self.method.training_step(self, step)
        if step.last_in_epoch:  # timed here, before validation, so checkpoints already hold it
            self.epoch_seconds.append(time.perf_counter() - self._epoch_start)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        outputs = self.model(self.target, batch)
        spec = self.specs[self.target]
        loss = spec.loss(outputs, batch["labels"]).mean()
        self.log("dev/loss", loss, batch_size=len(batch["labels"]))
        self.dev_metrics.update(spec.predictions(outputs), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = {k: float(v) for k, v in self.dev_metrics.compute().items()}
        self.dev_metrics.reset()
        score = headline_value(self.specs[self.target], values)
        self.log_dict({f"dev/{k}": v for k, v in values.items()}, batch_size=1)
        self.log(MONITOR, score, prog_bar=True, batch_size=1)
        if not self.trainer.sanity_checking:
            self.dev_scores.append(score)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        task = self.trainer.datamodule.test_tasks()[dataloader_idx]
        outputs = self.model(task, batch)
        self.test_metrics[task].update(self.specs[task].predictions(outputs), batch["labels"])

    def on_test_epoch_end(self) -> None:
        self.test_results = {}
        for task in self.trainer.datamodule.test_tasks():
            values = {k: float(v) for k, v in self.test_metrics[task].compute().items()}
            self.test_metrics[task].reset()
            values["score"] = headline_value(self.specs[task], values)
            self.test_results[task] = values
            self.log_dict({f"test/{task}/{k}": v for k, v in values.items()}, add_dataloader_idx=False,
                          batch_size=1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["weighting_method"] = self.method.state_dict()
        checkpoint["run_history"] = {"dev_scores": list(self.dev_scores),
                                     "epoch_seconds": list(self.epoch_seconds)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.method.load_state_dict(checkpoint["weighting_method"])
        self.dev_scores = list(checkpoint["run_history"]["dev_scores"])
        self.epoch_seconds = list(checkpoint["run_history"]["epoch_seconds"])
