"""The LightningModule: a shared model, per-task metrics, and a weighting method that drives training.

It uses manual optimization and hands every training step to the method, which also plans the
epoch's schedule. Lightning keeps the loop, progress bars, checkpoints, loggers and devices.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from src.checkpoints import RECORD_KEY
from src.data.schedule import DEV, Step
from src.data.tasks import TaskSpec, headline_value
from src.flat import flat_grad, pieces
from src.methods.base import WeightingMethod
from src.models.multitask import MultiTaskModel
from src.record import reset_peak_rss
from src.seam import TaskGradients

log = logging.getLogger(__name__)
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
MONITOR = "dev/score"  # the target's headline dev metric; ModelCheckpoint watches it
DIVERGENCE = 10.0  # a dev loss this many times its best so far (or chance level's) flags a diverging run


def lr_factor(progress: float, kind: str = "constant", warmup: float = 0.0) -> float:
    """The learning rate's factor at ``progress`` ∈ [0, 1] of training (``model.lr_schedule``): 1 for
    ``constant``; for ``linear``, ``progress / warmup`` during the warm-up, then a linear fall to 0 at the end."""
    if kind == "constant":
        return 1.0
    if kind != "linear":
        raise ValueError(f"lr schedule {kind!r}: must be constant or linear")
    if progress < warmup:
        return progress / warmup
    return max(0.0, (1.0 - progress) / (1.0 - warmup))


class StopRequested(Exception):
    """The process was asked to stop (SIGTERM); raised out of ``trainer.fit``."""


class MultiTaskModule(pl.LightningModule):
    """Trains ``model`` on several tasks under ``method``; validates and selects on the target's dev split.

    Args:
        model: shared trunk and one head per task.
        method: the weighting method, already set up with the tasks.
        tasks: the training tasks, the target first.
        optimizer: builds the optimizer from the parameters (a ``_partial_`` Hydra object).
        seed: with the epoch number, seeds the global RNG at each epoch start, so a run resumed at an
            epoch boundary replays exactly what an uninterrupted run does (dropout included).
        lr_schedule: ``(kind, warmup, epochs)``: :func:`lr_factor`'s, over ``epochs`` (``None``:
            ``trainer.max_epochs``); the factor is set at each planned step from how far training is (the step's
            middle), so a resume follows it.
        run_record: what defines the run (:func:`src.checkpoints.run_record`), written into every
            checkpoint so a resume can be checked against it.
    """

    def __init__(
        self,
        model: MultiTaskModel,
        method: WeightingMethod,
        tasks: Sequence[TaskSpec],
        optimizer: OptimizerFactory,
        seed: int = 0,
        lr_schedule: tuple[str, float, int | None] = ("constant", 0.0, None),
        run_record: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.model, self.method, self.optimizer_factory, self.seed = model, method, optimizer, seed
        self.lr_schedule = lr_schedule
        self._lr_factor = 1.0  # this step's (lr_factor)
        self.run_record = dict(run_record or {})
        self.specs = {t.name: t for t in tasks}
        self.target = tasks[0].name
        self.dev_metrics = tasks[0].make_metrics()
        self.test_metrics = nn.ModuleDict()  # per test set, built when testing starts
        self.dev_scores: list[float] = []
        self.dev_losses: list[float] = []
        self.warnings: list[str] = []  # what looks wrong with the run (a diverging loss), in results.json
        self._dev_loss = [0.0, 0]  # running sum and count of the epoch's per-example dev losses
        self.epoch_seconds: list[float] = []
        self.examples_seen = {t.name: 0 for t in tasks}  # training examples each task's loss was taken on
        # what training spent, whatever the method: optimizer steps, forward passes of the model over a batch and
        # backward passes (α-steps, look-aheads, trial steps, branches and merge evaluations included), and the
        # dev examples a method trained its weights on
        # backward_passes counts passes through the network; applied_gradients the combined gradients a method
        # applied from gradients it had taken (step_with_gradients), which run through no network
        self.spent = {
            "optimizer_steps": 0,
            "forward_passes": 0,
            "backward_passes": 0,
            "applied_gradients": 0,
            "dev_examples_used": 0,
        }
        self._in_step = False
        self._warned_vmap = False
        self.peak_gpu_mb: float | None = None  # peak allocated GPU memory of training, on CUDA
        self.peak_scope = "process"  # what the peak memory covers: "training" once it is reset at training's start
        model.trunk.register_forward_pre_hook(self._count_forward)
        self.test_results: dict[str, dict[str, float]] = {}
        self.test_heads: dict[str, str] = {}
        self._epoch_start = 0.0
        self._counts: dict[str, int] = {}  # the current step's global sizes, under several processes

    def _count_forward(self, trunk: nn.Module, args: Any) -> None:
        if self._in_step:  # every pass of a training step goes through the trunk; evaluation is not counted
            self.spent["forward_passes"] += 1

    # --- the seam methods stand on --------------------------------------------------------------
    def grad(self, loss: Tensor, params: Sequence[Tensor], **kwargs: Any) -> tuple[Tensor | None, ...]:
        """``torch.autograd.grad(loss, params)``, counted as a backward pass (α-steps, look-aheads)."""
        self.spent["backward_passes"] += 1
        return torch.autograd.grad(loss, params, allow_unused=True, **kwargs)

    def loss(self, task: str, batch: dict[str, Tensor]) -> Tensor:
        """Per-example loss of ``task`` on ``batch``."""
        return self.specs[task].loss(self.model(task, batch), batch["labels"])

    # --- several processes: each holds a shard of every step (src.data.schedule.shard) --------------
    @property
    def world(self) -> int:
        """The number of processes training together (1 without a trainer)."""
        return self.trainer.world_size if self._trainer is not None else 1

    @contextmanager
    def on_step(self, step: Step) -> Iterator[None]:
        """Inside the block the module's reductions read ``step``'s whole sizes (under several processes each holds
        a shard): a training step, or a callback that measures on a step's batches (the relatedness probe)."""
        saved, self._counts = self._counts, step.counts
        try:
            yield
        finally:
            self._counts = saved

    def global_mean(self, values: Tensor, key: str) -> Tensor:
        """``values.mean()`` over this process's shard of ``key``, scaled so that its mean over the processes
        is the mean over the whole step's examples (shards of a step may differ in size by one)."""
        mean = values.mean()
        if self.world == 1 or key not in self._counts:
            return mean
        return mean * (self.world * len(values) / self._counts[key])

    def reduce_mean(self, value: Tensor) -> Tensor:
        """The mean of ``value`` over the processes (itself on one): what every process must agree on."""
        if self.world == 1:
            return value
        return self.trainer.strategy.reduce(value.detach().clone(), reduce_op="mean")

    def reduce_sum(self, value: Tensor) -> Tensor:
        if self.world == 1:
            return value
        return self.trainer.strategy.reduce(value.detach().clone(), reduce_op="sum")

    def step_size(self, key: str, local: int) -> int:
        """The whole step's number of ``key`` examples (``local``, this process's, on one process)."""
        return self._counts.get(key, local) if self.world > 1 else local

    def gather_shards(self, value: Tensor, key: str) -> Tensor:
        """The rows of every process's shard of ``key`` in the whole step's order (DIW's features).

        Process r holds rows r, r + W, r + 2W, … of the step (:func:`src.data.schedule.shard`); shards may
        differ in length by one, so they are padded to one length for the all-gather and trimmed after.
        """
        if self.world == 1 or key not in self._counts:
            return value
        total, longest = self._counts[key], -(-self._counts[key] // self.world)
        padded = value.new_zeros((longest, *value.shape[1:]))
        padded[: len(value)] = value
        gathered = self.trainer.strategy.all_gather(padded)  # [W, longest, ...]
        return gathered.transpose(0, 1).reshape(-1, *value.shape[1:])[:total]

    def own_shard(self, value: Tensor, key: str) -> Tensor:
        """This process's rows of a whole-step tensor of ``key`` (the inverse of :meth:`gather_shards`)."""
        if self.world == 1 or key not in self._counts:
            return value
        return value[self.global_rank :: self.world]

    def broadcast(self, value: Tensor) -> Tensor:
        """Process 0's ``value`` on every process: for a choice drawn at random (PCGrad's order)."""
        if self.world == 1:
            return value
        return self.trainer.strategy.broadcast(value.detach().clone(), src=0)

    def task_losses(self, data: Mapping[str, Any]) -> dict[str, Tensor]:
        """Mean loss of each training task present in ``data`` (the dev batch left out), logged per step.

        Under several processes each is this process's share of the step's mean (:meth:`global_mean`), so
        DDP's averaged gradient is the gradient of the whole step's mean loss.
        """
        losses = {t: self.global_mean(self.loss(t, data[t]), t) for t in self.specs if t in data}
        for t, loss in losses.items():
            self.log(f"train/loss/{t}", loss.detach(), on_step=True, on_epoch=True, batch_size=len(data[t]["labels"]))
        return losses

    def trainable(self) -> list[nn.Parameter]:
        """Every trainable parameter, in the order the optimizer holds them."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """The trunk's trainable parameters by name: what every task's gradient lands on."""
        return self.model.shared_parameters()

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """The trainable parameters of ``task``'s head by name: only its own loss reaches them."""
        return self.model.task_parameters(task)

    def task_gradients(self, losses: Mapping[str, Tensor]) -> TaskGradients:
        """Each task's gradient on the shared parameters (one row per task) and on its own head.

        The graph is kept, so a method may still back-propagate a combination of the losses.
        Under a precision plugin with loss scaling (``16-mixed``) these gradients are unscaled.
        """
        shared = list(self.shared_parameters().values())
        rows, heads = [], {}
        for task, loss in losses.items():
            own = list(self.task_parameters(task).values())
            grads = self.grad(loss, shared + own, retain_graph=True)
            rows.append(flat_grad(grads[: len(shared)], shared))
            heads[task] = flat_grad(grads[len(shared) :], own)
        # taken with autograd.grad, these are not reduced by DDP: every process combines the same ones
        return TaskGradients(
            list(losses),
            self.reduce_mean(torch.stack(rows)),
            {t: self.reduce_mean(g) for t, g in heads.items()},
            self.reduce_mean(torch.stack([loss.detach().float() for loss in losses.values()])),
        )

    def example_gradients(self, task: str, batch: Mapping[str, Tensor]) -> Tensor:
        """Each example's gradient of ``task``'s loss on the shared parameters: ``[examples, shared]`` (SLGrad).

        ``torch.func``'s ``vmap(grad(...))`` over ``batch``, on the model as it is (call it inside :meth:`evaluating`
        for gradients free of dropout noise); counted as one backward pass. The result holds a copy of the trunk's
        gradient per example: a caller bounds its memory by passing a slice of a batch at a time. A forward that
        ``vmap`` cannot trace (data-dependent control flow in some Hub encoders) gets the same gradients one example
        at a time, with a warning; running out of memory is raised as it is.
        """
        from torch.func import functional_call, grad, vmap

        names = list(self.shared_parameters())
        fixed = {n: p.detach() for n, p in self.model.named_parameters() if n not in names}
        fixed.update(self.model.named_buffers())

        def loss_of_one(shared: tuple[Tensor, ...], example: dict[str, Tensor]) -> Tensor:
            one = {k: v.unsqueeze(0) for k, v in example.items()}
            outputs = functional_call(self.model, {**fixed, **dict(zip(names, shared))}, (task, one))
            return self.specs[task].loss(outputs, one["labels"]).sum()

        shared = tuple(p.detach() for p in self.shared_parameters().values())
        batch = dict(batch)
        self.spent["backward_passes"] += 1
        try:
            grads = vmap(grad(loss_of_one), in_dims=(None, 0))(shared, batch)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as error:
            if not self._warned_vmap:
                log.warning("per-example gradients: vmap failed (%s); taking the examples one at a time", error)
                self._warned_vmap = True
            n = len(batch["labels"])
            rows = [grad(loss_of_one)(shared, {k: v[i] for k, v in batch.items()}) for i in range(n)]
            grads = tuple(torch.stack(g) for g in zip(*rows))
        return torch.cat([g.reshape(len(g), -1) for g in grads], dim=1)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Inside the block the model is in eval mode (no dropout): α-steps, trial steps, features, merges
        judge the model as it will be evaluated. Its mode is restored after, also on an error."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    @contextmanager
    def displaced(self, moves: Sequence[tuple[Sequence[nn.Parameter], Tensor]]) -> Iterator[None]:
        """Inside the block, each ``(params, flat)`` pair's parameters are moved by ``flat``; restored after.

        For look-aheads (Auto-Lambda's virtual step, HydaLearn's trial updates): the restore copies the
        saved values back, so θ is bit-for-bit what it was. Graphs built before the block must not be
        back-propagated after it (the parameters were changed in place): apply gradients already taken
        with :meth:`step_with_gradients`.
        """
        saved = []
        with torch.no_grad():
            for params, flat in moves:
                for p, piece in zip(params, pieces(params, flat)):
                    saved.append((p, p.detach().clone()))
                    p.add_(piece.to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in saved:
                    p.copy_(value)

    def step_with_gradients(self, shared: Tensor, heads: Mapping[str, Tensor]) -> None:
        """One optimizer step with ``shared`` as the trunk's gradient and ``heads[t]`` as task t's head's.

        The gradients go through Lightning's ``manual_backward`` as the gradient of the surrogate
        Σ_p ⟨p, g_p⟩, so loss scaling, precision and strategy plugins (DDP's reduction) apply as they do to
        any loss. Heads not listed get no gradient. Counted as an applied gradient, not a backward pass: the
        surrogate's gradient runs through no network.
        """
        if not bool(torch.isfinite(shared).all()):
            raise FloatingPointError("the combined gradient is not finite; lower the learning rate")
        pairs = [(list(self.shared_parameters().values()), shared)]
        pairs += [(list(self.task_parameters(t).values()), g) for t, g in heads.items()]
        surrogate = sum(
            (p * piece.to(p.dtype)).sum() for params, flat in pairs for p, piece in zip(params, pieces(params, flat))
        )
        self._backward_and_step(surrogate)
        self.spent["applied_gradients"] += 1

    def backward_and_step(self, loss: Tensor) -> None:
        """``manual_backward(loss)`` and one optimizer step; a non-finite loss stops the run with a clear error."""
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss is {loss.item()}; lower the learning rate")
        self._backward_and_step(loss)
        self.spent["backward_passes"] += 1

    def _backward_and_step(self, loss: Tensor) -> None:
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        self._set_lr(opt.optimizer)  # again: a method may have loaded an optimizer state (ForkMerge's branches)
        opt.step()
        self.spent["optimizer_steps"] += 1

    def learning_rate(self) -> float:
        """The learning rate of this step (the schedule's factor applied): what look-ahead steps take."""
        return self.optimizers().optimizer.param_groups[0]["lr"]

    def _set_lr(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * self._lr_factor

    # --- Lightning hooks ------------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        # A method's own parameters (uncertainty weighting's log-variances) train with the model, undecayed.
        extra = [p for p in self.method.parameters() if p.requires_grad]
        if not extra:
            return self.optimizer_factory(self.trainable())
        return self.optimizer_factory([{"params": self.trainable()}, {"params": extra, "weight_decay": 0.0}])

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1 and not self.method.distributed:
            raise NotImplementedError(
                f"method={type(self.method).__name__} is not yet checked on several processes "
                f"({self.trainer.world_size} here); use trainer.devices=1 and run seeds in parallel with a launcher"
            )
        self.method.check_trainer(self.trainer)
        self.method.start(self)

    def on_train_start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.peak_scope = "training"
        elif reset_peak_rss():
            self.peak_scope = "training"

    def on_train_end(self) -> None:
        if self.device.type == "cuda":  # before teardown moves the model back to the CPU
            self.peak_gpu_mb = torch.cuda.max_memory_allocated(self.device) / 2**20

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_start(self, batch: Step, batch_idx: int) -> None:
        if batch_idx == 0:  # seeded here, after the loader's iterator has drawn its own seed
            torch.manual_seed(self.seed * 1_000_003 + self.current_epoch)

    def training_step(self, step: Step, batch_idx: int) -> None:
        # The epoch's last executed step (trainer.limit_train_batches may cut the plan short) closes it:
        # here, before validation and the checkpoint written after it, so the checkpoint holds the record.
        last = batch_idx == self.trainer.num_training_batches - 1
        kind, warmup, epochs = self.lr_schedule
        steps, epochs = self.trainer.num_training_batches, epochs or self.trainer.max_epochs
        progress = min(1.0, (self.current_epoch + (batch_idx + 0.5) / steps) / epochs)
        self._lr_factor = lr_factor(progress, kind, warmup)
        self._set_lr(self.optimizers().optimizer)  # before the method reads it (look-ahead steps)
        self._in_step = True
        try:
            with self.on_step(step):
                self.method.training_step(self, step, last)
        finally:
            self._in_step = False
        self._set_lr(self.optimizers().optimizer)  # the step's rate, also after a restored optimizer state
        for task, batch in step.data.items():
            seen = step.counts.get(task, len(batch["labels"]))  # the whole step's
            if task in self.examples_seen:
                self.examples_seen[task] += seen
            elif task == DEV:  # DIW's matching, αVIL's α-steps, Auto-Lambda's look-ahead, ForkMerge's merge
                self.spent["dev_examples_used"] += seen
        if last:
            self.epoch_seconds.append(time.perf_counter() - self._epoch_start)

    def on_train_batch_end(self, outputs: Any, batch: Step, batch_idx: int) -> None:
        # Lightning notes SIGTERM and trains on; a preempted run stops now, before a checkpoint of a partial
        # epoch could be written (resuming is exact only at epoch boundaries).
        if self.trainer.received_sigterm:
            raise StopRequested(f"SIGTERM received during epoch {self.current_epoch}")

    def on_train_epoch_end(self) -> None:
        epochs = self.current_epoch + 1
        if len(self.method.history) != epochs or len(self.epoch_seconds) != epochs:
            raise RuntimeError(
                f"epoch {self.current_epoch} closed without its record ({len(self.method.history)} records for "
                f"{epochs} epochs): the method's schedule and the trainer's epoch disagree"
            )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        outputs = self.model(self.target, batch)
        spec = self.specs[self.target]
        losses = spec.loss(outputs, batch["labels"])
        loss = losses.mean()
        self._dev_loss[0] += float(losses.detach().sum())
        self._dev_loss[1] += len(losses)
        self.log("dev/loss", loss, batch_size=len(batch["labels"]))
        self.dev_metrics.update(spec.predictions(outputs), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = {k: float(v) for k, v in self.dev_metrics.compute().items()}
        self.dev_metrics.reset()
        score = headline_value(self.specs[self.target], values)
        self.log_dict({f"dev/{k}": v for k, v in values.items()}, batch_size=1)
        self.log(MONITOR, score, prog_bar=True, batch_size=1)
        total = self.reduce_sum(torch.tensor(self._dev_loss, dtype=torch.float64, device=self.device))
        dev_loss, self._dev_loss = float(total[0] / total[1].clamp_min(1)), [0.0, 0]
        if not self.trainer.sanity_checking:
            self.dev_scores.append(score)
            self.check_divergence(self.current_epoch, dev_loss)
            self.dev_losses.append(dev_loss)

    def check_divergence(self, epoch: int, dev_loss: float) -> None:
        """Flag a dev loss that is not finite, or far above its best so far or above chance level.

        A run with a learning rate far too large can still finish and pick a best epoch; its results must
        not read as a normal run's. The flag is logged and kept in results.json under ``warnings``.
        """
        spec = self.specs[self.target]
        best = min(self.dev_losses, default=math.inf)
        chance = None if spec.regression else math.log(spec.num_outputs)  # cross-entropy of a uniform guess
        if not math.isfinite(dev_loss):
            message = f"epoch {epoch}: the target's dev loss is {dev_loss}"
        elif dev_loss > DIVERGENCE * best:
            message = f"epoch {epoch}: the target's dev loss rose to {dev_loss:.4g}, {dev_loss / best:.0f}× its best"
        elif chance is not None and dev_loss > DIVERGENCE * chance:
            message = f"epoch {epoch}: the target's dev loss {dev_loss:.4g} is {dev_loss / chance:.0f}× chance level's"
        else:
            return
        message += ": training is diverging; lower the learning rate (model.optimizer.lr)"
        log.warning(message)
        self.warnings.append(message)

    def on_test_start(self) -> None:
        dm = self.trainer.datamodule
        self.test_heads = {name: dm.head_of(name) for name in dm.test_tasks()}
        self.test_metrics = nn.ModuleDict(
            {name: self.specs[head].make_metrics() for name, head in self.test_heads.items()}
        ).to(self.device)
        self.method.before_test(self)  # the tested weights are loaded: a method may choose on dev here

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

    # The method's state is part of this module's state_dict (it is a submodule); only the run's
    # history lives beside it.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RECORD_KEY] = self.run_record
        checkpoint["data_identity"] = dict(getattr(self.trainer.datamodule, "identity", {}) or {})
        checkpoint["run_history"] = {
            "dev_scores": list(self.dev_scores),
            "epoch_seconds": list(self.epoch_seconds),
            "examples_seen": dict(self.examples_seen),
            "spent": dict(self.spent),
            "dev_losses": list(self.dev_losses),
            "warnings": list(self.warnings),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("data_identity") or {}
        now = dict(getattr(self.trainer.datamodule, "identity", {}) or {}) if self._trainer is not None else {}
        if changed := sorted(k for k in saved.keys() & now.keys() if saved[k] != now[k]):
            from src.data.base import DataError

            raise DataError(
                f"the data changed since the checkpoint was written ({', '.join(changed)}: other content than the "
                "run started on); resuming would train later epochs on other data. Restore the data the run started "
                "with, or start a new run in a new folder."
            )
        self.dev_scores = list(checkpoint["run_history"]["dev_scores"])
        self.epoch_seconds = list(checkpoint["run_history"]["epoch_seconds"])
        self.examples_seen = dict(checkpoint["run_history"]["examples_seen"])
        self.spent = {**self.spent, **checkpoint["run_history"]["spent"]}
        self.dev_losses = list(checkpoint["run_history"]["dev_losses"])
        self.warnings = list(checkpoint["run_history"]["warnings"])
