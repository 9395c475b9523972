"""The LightningModule: a shared model, per-task metrics, and a weighting method that drives training.

It uses manual optimization and hands every training step to the method, which also plans the
epoch's schedule. Lightning keeps the loop, progress bars, checkpoints, loggers and devices.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)
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

    def __init__(
        self,
        model: MultiTaskModel,
        method: WeightingMethod,
        tasks: Sequence[TaskSpec],
        optimizer: OptimizerFactory,
        seed: int = 0,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.model, self.method, self.optimizer_factory, self.seed = model, method, optimizer, seed
        self.specs = {t.name: t for t in tasks}
        self.target = tasks[0].name
        self.dev_metrics = tasks[0].make_metrics()
        self.test_metrics = nn.ModuleDict()  # per test set, built when testing starts
        self.dev_scores: list[float] = []
        self.epoch_seconds: list[float] = []
        self.test_results: dict[str, dict[str, float]] = {}
        self.test_heads: dict[str, str] = {}
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
        if self.trainer.world_size > 1:
            raise NotImplementedError(
                f"training on {self.trainer.world_size} processes is not supported yet: every process would run "
                "the same schedule. Use one device (trainer.devices=1) and run seeds in parallel with a launcher."
            )
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

    def on_test_start(self) -> None:
        dm = self.trainer.datamodule
        self.test_heads = {name: dm.head_of(name) for name in dm.test_tasks()}
        self.test_metrics = nn.ModuleDict(
            {name: self.specs[head].make_metrics() for name, head in self.test_heads.items()}
        ).to(self.device)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = list(self.test_heads)[dataloader_idx]
        head = self.test_heads[name]
        outputs = self.model(head, batch)
        self.test_metrics[name].update(self.specs[head].predictions(outputs), batch["labels"])

    def on_test_epoch_end(self) -> None:
        self.test_results = {}
        for name, head in self.test_heads.items():
            values = {k: float(v) for k, v in self.test_metrics[name].compute().items()}
            self.test_metrics[name].reset()
            values["score"] = headline_value(self.specs[head], values)
            self.test_results[name] = values
        # Straight to the loggers: self.log here would repeat every value under every test dataloader.
        flat = {f"test/{name}/{k}": v for name, values in self.test_results.items() for k, v in values.items()}
        for lg in self.loggers:
            lg.log_metrics(flat, step=self.global_step)
        log.info("test: %s", ", ".join(f"{n}={v['score']:.4f}" for n, v in self.test_results.items()))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["weighting_method"] = self.method.state_dict()
        checkpoint["run_history"] = {"dev_scores": list(self.dev_scores), "epoch_seconds": list(self.epoch_seconds)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.method.load_state_dict(checkpoint["weighting_method"])
        self.dev_scores = list(checkpoint["run_history"]["dev_scores"])
        self.epoch_seconds = list(checkpoint["run_history"]["epoch_seconds"])
