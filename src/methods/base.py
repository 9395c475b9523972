"""The small base class every weighting method builds on.

A method is an ``nn.Module`` owned by the LightningModule (LibMTL's ``AbsWeighting``, TorchJD's
``Aggregator``): its state (task weights, α, DIW's warm start, learnable weights) is buffers and
parameters, so it follows the model to any device and dtype and Lightning checkpoints it with the
model; plain-Python state (the per-epoch history) travels as the module's extra state.

A method plans each epoch's schedule (mixed batches, per-task blocks, the target alone) and interprets
each training step through the LightningModule's narrow seam (:class:`src.seam.Seam`, which
:class:`src.module.MultiTaskModule` implements: per-task losses, per-task gradients on the shared parameters,
a combined gradient applied through Lightning's ``manual_backward``). It knows nothing of devices, precision or
strategies. Adding a method is one file here, one YAML in ``conf/method/`` and its tests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from src.data import schedule
from src.data.schedule import EpochData, Step
from src.data.tasks import TaskSpec
from src.schema import HUGE, MethodConfig

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from src.results import RunResults
    from src.seam import Seam


class WeightingMethod(nn.Module):
    """Base class: task weights, the epoch schedule, and the per-step update.

    Subclasses set ``Config`` (their options' schema, read as ``self.cfg.<option>``), implement
    :meth:`plan_epoch` and :meth:`step`, and may extend :meth:`end_epoch` (per-epoch bookkeeping,
    returning what to log) and :meth:`get_extra_state`/:meth:`set_extra_state` for plain-Python state.
    Tensor state is registered with ``register_buffer``; buffers whose size changes during training
    (a warm start over a batch) are resized when a checkpoint is loaded.

    Attributes:
        distributed: the method is correct on several processes: what the processes must agree on (per-task
            gradients, dev-loss gradients, features) goes through the module's reductions, and a test with
            two processes holds. Methods without it refuse ``trainer.devices`` > 1.
        whole_epochs: the method must see every step of an epoch (αVIL's α-steps close it), so it refuses
            trainer settings that cut an epoch short. Methods without it support cut epochs: the epoch is
            closed at its last *executed* step, so the record is never empty.
        batchings: the ``task.batching`` values the method's rule works under: a weighted sum of losses works
            on ``mixed`` and ``sampled`` steps; a rule that compares the tasks' gradients in each step needs
            every task in it (``mixed``). A method that takes ``mixed`` takes ``matched`` too (every task in each
            step, at sampled batching's step count). Checked with the config, before any data loads.
        schedule: the name of a schedule of the method's own that ``task.batching`` does not change
            (``blocks``, ``branches``, ``target``); ``None`` for methods that follow ``task.batching``.
    """

    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # what a learned weight may be (checked after every epoch, :meth:`check_weights`): the option that moves the
    # weights (named when they leave their range), whether a negative weight is meaningful, whether the target's
    # weight may reach 0, and the option holding the auxiliaries' floor
    step_option: ClassVar[str] = "model.optimizer.lr"
    signed: ClassVar[bool] = False
    target_may_vanish: ClassVar[bool] = False
    floor_option: ClassVar[str | None] = None
    ceiling_option: ClassVar[str | None] = None
    whole_epochs: ClassVar[bool] = False
    distributed: ClassVar[bool] = False  # checked on several processes (tests/test_distributed.py)
    shorten_with: ClassVar[str] = "task.max_train_examples"  # how to shorten epochs instead of cutting them
    batchings: ClassVar[tuple[str, ...]] = ("mixed",)
    counters: ClassVar[tuple[str, ...]] = ()  # plain-Python attributes (step counters) a checkpoint keeps
    schedule: ClassVar[str | None] = None

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.cfg = self.Config(**options)  # validates the options; the one place for each default
        self.tasks: list[TaskSpec] = []
        self.target = ""
        self.history: list[dict[str, float]] = []
        self.register_buffer("w", torch.ones(0))
        # Running sums for weights that are per-step or per-example means over an epoch (DIW's β, PCGrad's
        # coefficients): filled by observe_weights, turned into w at the epoch's end. Not checkpointed: an
        # epoch is always closed before a checkpoint is written.
        self.register_buffer("_weight_sum", torch.zeros(0), persistent=False)
        self.register_buffer("_weight_count", torch.zeros(0), persistent=False)

    # --- set-up ---------------------------------------------------------------------------------
    def setup(self, tasks: Sequence[TaskSpec], target: str) -> None:
        """Bind the method to its tasks (the target first) before training starts."""
        if not tasks or tasks[0].name != target:
            raise ValueError("tasks must list the target first")
        self.tasks, self.target = list(tasks), target
        self.w = torch.ones(len(tasks))
        self._weight_sum, self._weight_count = torch.zeros(len(tasks)), torch.zeros(len(tasks))
        self.history = []

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def index(self, task: str) -> int:
        return self.names.index(task)

    def check_trainer(self, trainer: pl.Trainer) -> None:
        """Reject trainer settings the method cannot work with (with what to do instead)."""
        cut = trainer.fast_dev_run or trainer.limit_train_batches not in (None, 1.0)
        if self.whole_epochs and cut:
            raise ValueError(
                f"method={type(self).__name__} needs whole epochs (its schedule closes each epoch with a step of its "
                "own), so trainer.fast_dev_run and trainer.limit_train_batches are not supported. Shorten epochs "
                f"with {self.shorten_with} instead."
            )

    # --- schedule ------------------------------------------------------------------------------
    def plan_epoch(self, data: EpochData, generator: torch.Generator) -> list[Step]:
        """The steps of one epoch: a pure function of ``data`` (sizes, budget, batching, epoch) and ``generator``."""
        raise NotImplementedError

    # The plans every method draws from (src/data/schedule.py); each meets the epoch's budget.
    def mixed_plan(self, data: EpochData, generator: torch.Generator, with_dev: bool = False) -> list[Step]:
        """Each step a batch of every task (and of the target's dev split when ``with_dev``): at the target's batch
        count (``mixed``), or at sampled batching's step count (``matched``)."""
        if data.batching == "matched":
            return schedule.matched_plan(data, self.names, generator, with_dev)
        return schedule.mixed_plan(data, self.names, generator, with_dev)

    def target_plan(self, data: EpochData, generator: torch.Generator) -> list[Step]:
        """The target alone, one pass."""
        return schedule.target_plan(data, self.target, generator)

    def batched_plan(self, data: EpochData, generator: torch.Generator) -> list[Step]:
        """The plan ``task.batching`` asks for: mixed batches, or one task's batch per step in a seeded shuffle."""
        if data.batching == "sampled":
            return schedule.sampled_plan(data, self.names, generator)
        return self.mixed_plan(data, generator)

    # --- training ------------------------------------------------------------------------------
    def training_step(self, module: Seam, step: Step, last: bool) -> None:
        """Run one planned step; after the epoch's last executed step (``last``), close the epoch and log it."""
        self.step(module, step)
        if last:
            extra = self.end_epoch(module)  # first: a method may set its weights here
            if bool(self._weight_count.gt(0).any()):
                seen = self._weight_count > 0
                self.w = torch.where(seen, self._weight_sum / self._weight_count.clamp_min(1), self.w)
                self._weight_sum.zero_()
                self._weight_count.zero_()
            record = {f"weight/{t}": float(w) for t, w in zip(self.names, self.w)}
            record.update(extra)
            self.history.append(record)
            module.log_dict(record, on_step=False, on_epoch=True, batch_size=1)
            for problem in self.check_weights():
                message = f"epoch {len(self.history) - 1}: method {type(self).__name__}: {problem}"
                log.warning(message)
                module.warnings.append(message)

    def check_weights(self) -> list[str]:
        """What is wrong with the weights after an epoch (a warning each, in the log and results.json); weights
        that are not finite stop the run, naming the option to lower."""
        w, names = self.w.detach().float().cpu(), self.names
        if not bool(torch.isfinite(w).all()):
            bad = ", ".join(f"{t}={float(v)}" for t, v in zip(names, w) if not torch.isfinite(v))
            raise FloatingPointError(
                f"method {type(self).__name__}: the task weights are no longer finite ({bad}); lower {self.step_option}"
            )
        problems = []
        if len(w) and float(w[0]) <= 1e-6 * float(w.abs().max()) and not self.target_may_vanish:
            what = "its loss is ascended" if float(w[0]) < 0 else "its loss no longer trains the model"
            problems.append(f"the target's weight is {float(w[0]):.3g}: {what}; lower {self.step_option}")
        if not self.signed and bool((w < 0).any()):
            bad = ", ".join(f"{t}={float(v):.3g}" for t, v in zip(names, w) if v < 0)
            problems.append(f"negative weights ({bad}) ascend those tasks' losses; lower {self.step_option}")
        if bool((w.abs() > HUGE).any()):
            bad = ", ".join(f"{t}={float(v):.3g}" for t, v in zip(names, w) if abs(v) > HUGE)
            problems.append(f"weights beyond {HUGE:g} ({bad}): the weighting has diverged; lower {self.step_option}")
        for bound, option in (("floor", self.floor_option), ("ceiling", self.ceiling_option)):
            value = getattr(self.cfg, option.split(".")[-1], None) if option else None
            if (
                value is not None
                and len(w) > 1
                and bool(torch.isclose(w[1:], torch.full_like(w[1:], float(value))).all())
            ):
                problems.append(
                    f"every auxiliary's weight is at its {bound} {option}={value}: the weighting has stopped choosing; "
                    f"lower {self.step_option}"
                )
        return problems

    def step(self, module: Seam, step: Step) -> None:
        raise NotImplementedError

    def start(self, module: Seam) -> None:
        """At the start of fitting, with the module: a method that acts on the model binds here (a conditional
        model's validation weights)."""

    def before_test(self, module: Seam) -> None:
        """Before the test, with the tested weights loaded: a method that chooses among what one model holds
        (a conditional model's weightings) chooses here, on dev."""

    def finish_record(self, results: RunResults) -> None:
        """Amend the run's record after its test: a method's own results (under an :data:`src.record.OPEN_KEYS`
        key) and scores it chose on."""

    def end_epoch(self, module: Seam) -> dict[str, float]:
        """Per-epoch bookkeeping after the last step; returns extra scalars for the log and history.

        Keys ``prefix/task`` become ``<prefix>_history`` in results.json; use ``method/<name>`` for scalars.
        """
        return {}

    # --- helpers for subclasses ----------------------------------------------------------------
    def observe_weights(self, index: Tensor, values: Tensor) -> None:
        """Add ``values[i]`` to task ``index[i]``'s running mean; the epoch's mean becomes its weight."""
        index = index.to(self._weight_sum.device)
        self._weight_sum.index_add_(0, index, values.detach().to(self._weight_sum))
        self._weight_count.index_add_(0, index, torch.ones_like(index, dtype=self._weight_count.dtype))

    def weighted_sum(self, losses: Mapping[str, Tensor]) -> Tensor:
        return sum(self.w[self.index(t)].to(loss) * loss for t, loss in losses.items())

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

    def get_extra_state(self) -> dict[str, Any]:
        """Plain-Python state, saved in the module's ``state_dict`` beside the buffers: the history and the
        attributes named in :attr:`counters`."""
        return {"history": [dict(r) for r in self.history], **{name: getattr(self, name) for name in self.counters}}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.history = [dict(r) for r in state["history"]]
        for name in self.counters:
            setattr(self, name, state[name])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # A buffer's size may differ from the checkpoint's (a warm start over the last batch, or a method
        # built before setup): take the checkpoint's size, keeping this module's device and dtype.
        for name, buffer in self._buffers.items():
            saved = state_dict.get(prefix + name)
            if buffer is not None and saved is not None and saved.shape != buffer.shape:
                self._buffers[name] = buffer.new_empty(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
