"""The DataModule base shared by every task group: splits, caps, and the method's schedule."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from src.data.schedule import (
    DEV,
    EpochData,
    Step,
    TaskData,
    epoch_budget,
    epoch_generator,
    eval_loader,
    group_by_length,
    shard,
    step_loader,
)
from src.data.tasks import TaskSpec
from src.schema import check_tasks


class DataError(RuntimeError):
    """A data file or split is missing, corrupt or of the wrong shape; the message says which and what to do."""


Planner = Callable[[EpochData, torch.Generator], list[Step]]


class Subset:
    """A view of a :class:`TaskData` restricted to some example indices."""

    def __init__(self, data: TaskData, indices: Tensor):
        self.data, self.indices = data, indices

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        return self.data.batch(self.indices[indices])

    def lengths(self) -> Tensor | None:
        """The examples' lengths, for data that has them (text)."""
        inner = getattr(self.data, "lengths", None)
        return None if inner is None else inner()[self.indices]


def content_key(files: Iterable[Path], *extra: object, length: int = 16) -> str:
    """A short hash of the files' names and bytes (and of ``extra``): a cache built from them is keyed by it.

    Keyed by content, a cache cannot outlive an edit of its source, a truncated copy or an edit that was
    undone; hashing the few MB a task group reads costs milliseconds.
    """
    h = hashlib.blake2b(digest_size=16)
    for item in extra:
        h.update(repr(item).encode() + b"\0")
    for path in sorted(Path(f) for f in files):
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:length]


def seeded_split(n: int, k: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random split of ``range(n)`` into ``k`` and ``n - k`` indices (each sorted)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:k].sort().values, perm[k:].sort().values


def cap(data: TaskData, limit: int | None, seed: int) -> TaskData:
    """At most ``limit`` examples of ``data``, a seeded random subset (``None``: all)."""
    if limit is None or limit >= len(data):
        return data
    return Subset(data, seeded_split(len(data), limit, seed)[0])


class MultiTaskDataModule(pl.LightningDataModule):
    """Train splits for every task, the target's dev split, test splits, and the epoch schedule.

    Subclasses declare ``TASKS`` (every task the group offers) and implement :meth:`load`. The
    weighting method plans each epoch (see :mod:`src.data.schedule`); the DataModule builds the
    loader for it, fresh every epoch, from a generator that depends only on (seed, epoch).

    Args:
        target: the task whose dev score is optimised.
        auxiliaries: the other training tasks.
        batch_size: examples per task per training step.
        eval_batch_size: examples per validation/test batch.
        max_train_examples: cap on each task's training examples (``None``: all).
        train_examples: per-task caps that replace ``max_train_examples`` for the tasks named
            (``{left: 1000}``: a low-resource target beside full-size auxiliaries).
        budget: the rule for each auxiliary's examples per epoch, beside the target's pass
            (:func:`~src.data.schedule.epoch_budget`: ``equal``, ``proportional``, ``temperature``,
            ``fraction``, ``counts``); every method's plan draws from it.
        temperature: the temperature of ``budget=temperature``.
        budget_fraction: the share of each auxiliary of ``budget=fraction``.
        budget_examples: each auxiliary's examples per epoch under ``budget=counts``.
        batching: ``mixed`` or ``sampled`` steps (:class:`~src.data.schedule.EpochData`).
        max_eval_examples: cap on the dev and each test split (``None``: all).
        dev_examples: cap on the dev split alone, over ``max_eval_examples`` (a low-resource dev set).
        dev_fraction: share of the target's training data held out as its dev split.
        seed: seeds every random choice of the data (dev carve-out, caps, epoch sampling).
        num_workers: DataLoader workers.
    """

    TASKS: dict[str, TaskSpec] = {}
    GROUP = ""
    INPUTS = ""  # what a batch holds (images, text): a model config must read the same (src/schema.py)

    def __init__(
        self,
        target: str,
        auxiliaries: Sequence[str] = (),
        batch_size: int = 64,
        eval_batch_size: int = 256,
        max_train_examples: int | None = None,
        max_eval_examples: int | None = None,
        train_examples: Mapping[str, int] | None = None,
        budget: str = "equal",
        temperature: float = 2.0,
        budget_fraction: float = 0.5,
        budget_examples: Mapping[str, int] | None = None,
        batching: str = "mixed",
        dev_examples: int | None = None,
        dev_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
        group_by_length: int | None = None,
    ):
        super().__init__()
        check_tasks(self.GROUP, list(self.TASKS), target, auxiliaries)  # a text group's tasks are its instance's
        self.target, self.auxiliaries = target, list(auxiliaries)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.max_train_examples, self.max_eval_examples = max_train_examples, max_eval_examples
        self.train_examples = dict(train_examples or {})
        self.budget_rule, self.temperature, self.batching = budget, temperature, batching
        self.budget_fraction, self.budget_examples = budget_fraction, dict(budget_examples or {})
        self.dev_examples = dev_examples
        self.dev_fraction, self.seed, self.num_workers = dev_fraction, seed, num_workers
        self.group_by_length = group_by_length  # a window of steps; None: batches as planned
        self._lengths: dict[str, Tensor] | None = None
        self.planner: Planner | None = None
        self.train_sets: dict[str, TaskData] = {}
        self.dev_set: TaskData | None = None
        self.test_sets: dict[str, TaskData] = {}
        # the identity of the data each split was built from (the content keys its cache is keyed by): recorded
        # in results.json and checkpoints, so a resume on changed data is refused
        self.identity: dict[str, str] = {}

    @classmethod
    def resolve_auxiliaries(cls, task: Mapping[str, Any]) -> list[str]:
        """``task.auxiliaries`` of a task config as a list: ``auto`` is every other task the group offers (its
        presets and the tasks declared under ``task.tasks``). The one rule runs, searches and checks use."""
        auxiliaries = task.get("auxiliaries", "auto")
        if auxiliaries != "auto":
            return list(auxiliaries)
        offered = dict.fromkeys([*cls.TASKS, *(task.get("tasks") or {})])
        return [t for t in offered if t != task["target"]]

    @property
    def tasks(self) -> list[TaskSpec]:
        """Specs of the training tasks, the target first."""
        return [self.TASKS[t] for t in [self.target, *self.auxiliaries]]

    def load(self) -> tuple[dict[str, TaskData], TaskData, dict[str, TaskData]]:
        """Full (uncapped) train splits per task, the target's dev split and test splits per task."""
        raise NotImplementedError

    def schedule_with(self, planner: Planner) -> None:
        """Let a weighting method plan the epochs (its ``plan_epoch``)."""
        self.planner = planner

    def setup(self, stage: str | None = None) -> None:
        if self.dev_set is not None:
            return
        train, dev, test = self.load()
        self.train_sets = {
            t: cap(d, self.train_examples.get(t, self.max_train_examples), self.seed + 1) for t, d in train.items()
        }
        self.dev_set = cap(dev, self.dev_examples or self.max_eval_examples, self.seed + 2)
        self.test_sets = {t: cap(d, self.max_eval_examples, self.seed + 3) for t, d in test.items()}
        if len(self.dev_set) < 2:  # one example has no accuracy spread, no correlation, no MCC
            raise DataError(
                f"the dev split of {self.target!r} has {len(self.dev_set)} example(s): dev_fraction="
                f"{self.dev_fraction} of its training data; raise task.dev_fraction (or give the target more data)"
            )
        for task, data in self.train_sets.items():
            if len(data) == 0:
                raise DataError(
                    f"the training split of {task!r} is empty after the dev carve-out and caps; check "
                    "task.dev_fraction, task.train_examples and task.max_train_examples"
                )
        self.budget()  # a budget the splits cannot meet is refused here, before training

    def sizes(self) -> dict[str, int]:
        """Training examples per task and the dev split's size under :data:`DEV`."""
        return {**{t: len(d) for t, d in self.train_sets.items()}, DEV: len(self.dev_set)}

    def budget(self) -> dict[str, int]:
        """Examples of each task per epoch: the target's pass and each auxiliary's count from the budget rule."""
        return epoch_budget(
            self.sizes(), self.target, self.budget_rule, self.temperature, self.budget_fraction, self.budget_examples
        )

    def epoch_data(self, epoch: int) -> EpochData:
        return EpochData(self.sizes(), self.batch_size, self.budget(), self.batching, epoch)

    def plan(self, epoch: int) -> list[Step]:
        if self.planner is None:
            raise RuntimeError("no schedule: call schedule_with(method.plan_epoch) before training")
        return self.planner(self.epoch_data(epoch), epoch_generator(self.seed, epoch))

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        steps = self.plan(epoch)
        if self.group_by_length:  # the same regrouping on every process: it depends on (seed, epoch) only
            steps = group_by_length(steps, self.lengths(), self.group_by_length, epoch_generator(self.seed + 1, epoch))
        steps = shard(steps, rank, world)  # one plan; each process takes its share of every step
        return step_loader(steps, {**self.train_sets, DEV: self.dev_set}, self.num_workers)

    def lengths(self) -> dict[str, Tensor]:
        """Each training split's (and the dev split's) example lengths, for splits that have them (text)."""
        if self._lengths is None:
            splits = {**self.train_sets, DEV: self.dev_set}
            found = {k: getattr(d, "lengths", lambda: None)() for k, d in splits.items()}
            self._lengths = {k: v for k, v in found.items() if v is not None}
        return self._lengths

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.dev_set, self.eval_batch_size, self.num_workers)

    def test_dataloader(self) -> list[DataLoader]:
        """One loader per test set, the target's first."""
        return [eval_loader(self.test_sets[t], self.eval_batch_size, self.num_workers) for t in self.test_tasks()]

    def test_tasks(self) -> list[str]:
        """Names of the test sets, the target's first."""
        return [t.name for t in self.tasks if t.name in self.test_sets]

    def head_of(self, test_set: str) -> str:
        """The task (head) a test set is scored with (MNLI's mismatched set uses the mnli head)."""
        return test_set
