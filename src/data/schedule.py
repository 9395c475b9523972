"""Training schedules: what one Lightning training step sees.

A weighting method decides the schedule of an epoch (mixed batches from every task, per-task blocks,
the target alone) as a list of :class:`Step` plans holding example indices. The DataModule turns that
plan into a DataLoader, so Lightning keeps running the loop, the progress bar and checkpointing;
the method only interprets each step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from src.schema import BUDGETS

DEV = "__dev__"
"""Key of the target's dev split in a step's batches (DIW's matching batch, αVIL's α-steps)."""


class TaskData(Protocol):
    """One task's split: a length and a way to build a collated batch from example indices."""

    def __len__(self) -> int: ...

    def batch(self, indices: Tensor) -> dict[str, Tensor]: ...


@dataclass
class Step:
    """One training step: example indices per task (or :data:`DEV`) and where it sits in the epoch.

    Under several processes each holds a shard of the step (:func:`shard`) and ``counts`` the whole
    step's sizes. ``block`` names the phase the step belongs to: a task's name for a per-task block (αVIL's, a
    branch's), one of :data:`src.schema.PHASES` for a method's own phase (``"alpha"``: αVIL's α-steps, ``"merge"``:
    ForkMerge's, ``"finetune"``: post-training's target phase), ``None`` for mixed, sampled or matched batches.
    After loading, ``data`` holds the collated batches.
    """

    indices: dict[str, Tensor]
    block: str | None = None
    first_in_block: bool = False
    last_in_block: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # the whole step's examples per key, when sharded


MAX_PASSES = 100  # a budget rule may draw at most this many passes over an auxiliary per epoch


@dataclass(frozen=True)
class EpochData:
    """What a method plans an epoch from: a pure function of this, the epoch and a generator.

    Attributes:
        sizes: training examples per task, and the dev split's size under :data:`DEV`.
        batch_size: examples of one task per step.
        budget: examples of each task per epoch (:func:`epoch_budget`): the target's pass (its size) and each
            auxiliary's count from ``task.budget``. Every method's plan draws from it.
        batching: ``mixed`` (each step a batch of every task), ``matched`` (each step a batch of every task, at
            the steps and examples of ``sampled``: :func:`matched_plan`) or ``sampled`` (each step one task's batch,
            the epoch's batches of all tasks in a seeded shuffle), for methods whose rule is a weighted sum of losses.
        epoch: the epoch being planned (0-based).
    """

    sizes: Mapping[str, int]
    batch_size: int
    budget: Mapping[str, int]
    batching: str = "mixed"
    epoch: int = 0


def epoch_budget(
    sizes: Mapping[str, int],
    target: str,
    rule: str,
    temperature: float = 2.0,
    fraction: float = 0.5,
    counts: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Examples of each task per epoch: the one budget every method's plan draws from.

    An epoch is one pass over the target. Each auxiliary t gets, by ``rule``: ``equal``, as many examples as
    the target; ``proportional``, its size (one pass over every task); ``temperature``, n·(size_t/n)^(1/T),
    between the two (T=1: proportional; T→∞: equal), as multitask NLP samples tasks; ``fraction``, that
    share of its own size (0.5: half of each auxiliary, αVIL's paper-style mini-epoch); ``counts``, the
    number given for it. Drawing more than :data:`MAX_PASSES` passes over an auxiliary is refused.
    """
    n = sizes[target]
    auxiliaries = [t for t in sizes if t not in (target, DEV)]
    if rule == "equal":
        drawn = {t: n for t in auxiliaries}
    elif rule == "proportional":
        drawn = {t: sizes[t] for t in auxiliaries}
    elif rule == "temperature":
        drawn = {t: n * (sizes[t] / n) ** (1 / temperature) for t in auxiliaries}
    elif rule == "fraction":
        drawn = {t: fraction * sizes[t] for t in auxiliaries}
    elif rule == "counts":
        counts = dict(counts or {})
        if missing := [t for t in auxiliaries if t not in counts]:
            raise ValueError(
                f"task.budget=counts needs task.budget_examples for every auxiliary; missing: {', '.join(missing)}"
            )
        drawn = {t: counts[t] for t in auxiliaries}
    else:
        raise ValueError(f"task.budget={rule!r}: must be one of {', '.join(BUDGETS)}")
    out = {target: n}
    for t, k in drawn.items():
        if not k <= MAX_PASSES * sizes[t]:
            raise ValueError(
                f"task.budget={rule} draws {k:.3g} examples of {t!r} per epoch, over {MAX_PASSES} passes over its "
                f"{sizes[t]} examples; choose a smaller budget"
            )
        out[t] = max(1, round(k))
    return out


def split_like(indices: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """``indices`` cut into ``len(sizes)`` consecutive pieces in proportion to ``sizes``.

    Equal totals give pieces of exactly ``sizes``: an auxiliary drawn as often as the target is batched
    like it.
    """
    total, n = sum(sizes), len(indices)
    bounds = [round(n * c / total) for c in (0, *itertools.accumulate(sizes))]
    return [indices[a:b] for a, b in zip(bounds, bounds[1:])]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator that depends only on (seed, epoch), so a resumed run replays the same epochs."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def sample(n: int, k: int, generator: torch.Generator) -> Tensor:
    """``k`` indices into ``range(n)``: without replacement, then fresh permutations when ``k > n``."""
    if n <= 0:
        raise ValueError("cannot sample from an empty split")
    perms = [torch.randperm(n, generator=generator) for _ in range(math.ceil(k / n))]
    return torch.cat(perms)[:k]


def chunks(indices: Tensor, batch_size: int) -> list[Tensor]:
    return list(indices.split(batch_size))


def block(name: str, batches: Sequence[Mapping[str, Tensor]]) -> list[Step]:
    """Consecutive steps forming one named phase, with their first/last flags set."""
    return [
        Step(indices=dict(b), block=name, first_in_block=i == 0, last_in_block=i == len(batches) - 1)
        for i, b in enumerate(batches)
    ]


def target_plan(data: EpochData, target: str, generator: torch.Generator) -> list[Step]:
    """The target alone: one pass over its training data in batches of ``data.batch_size``."""
    order = torch.randperm(data.sizes[target], generator=generator)
    return finish([Step(indices={target: b}) for b in chunks(order, data.batch_size)])


def mixed_plan(data: EpochData, tasks: Sequence[str], generator: torch.Generator, with_dev: bool = False) -> list[Step]:
    """Each step holds a batch of every task in ``tasks`` (the target first), and of dev when ``with_dev``.

    The target makes one pass in batches of ``data.batch_size``; each auxiliary's budget is drawn afresh
    each epoch without replacement (repeating only when the split is smaller) and spread over the steps in
    proportion to the target's batches. A step whose share of a task is empty leaves that task out.
    """
    target, auxiliaries = tasks[0], tasks[1:]
    batches = chunks(torch.randperm(data.sizes[target], generator=generator), data.batch_size)
    lengths = [len(b) for b in batches]
    per_task = {t: split_like(sample(data.sizes[t], data.budget[t], generator), lengths) for t in auxiliaries}
    if with_dev:
        per_task[DEV] = split_like(sample(data.sizes[DEV], data.sizes[target], generator), lengths)
    steps = [
        Step(indices={target: b, **{t: c[i] for t, c in per_task.items() if len(c[i])}}) for i, b in enumerate(batches)
    ]
    return finish(steps)


def matched_steps(data: EpochData, tasks: Sequence[str]) -> int:
    """The optimizer steps of an epoch under ``sampled`` (and ``matched``) batching: every task's batches."""
    return sum(math.ceil(data.budget[t] / data.batch_size) for t in tasks)


def matched_plan(
    data: EpochData, tasks: Sequence[str], generator: torch.Generator, with_dev: bool = False
) -> list[Step]:
    """Mixed batches at the step count and examples of :func:`sampled_plan`: each step holds a batch of every task.

    The epoch takes as many steps as sampled batching does (:func:`matched_steps`) and each task its budget's
    examples (the target one pass), spread over the steps in pieces whose sizes differ by at most one: with equal
    budgets a step holds about ``batch_size / (K + 1)`` examples of each task, ``batch_size`` in all. A gradient
    rule that needs every task in each step then takes the steps and sees the examples sampled batching does, where
    ``mixed`` takes 1/(K+1) of the steps. A task whose budget is smaller than the step count would miss steps:
    refused, naming the batch size that fits. With ``with_dev``, each step's dev batch is as large as its target's
    piece (as :func:`mixed_plan` matches it to the target's batch).
    """
    target = tasks[0]
    steps = matched_steps(data, tasks)
    if short := [t for t in tasks if data.budget[t] < steps]:
        t = short[0]
        raise ValueError(
            f"task.batching=matched: {t!r} has {data.budget[t]} examples per epoch for {steps} steps, so some steps "
            f"would hold none of it; every step holds every task only while each task's share of a step is at least "
            f"one example: raise task.batch_size (to at least {len(tasks)}, one example of each task per step, and "
            "more where budgets differ) or use task.batching=mixed"
        )
    ones = [1] * steps
    per_task = {target: split_like(torch.randperm(data.sizes[target], generator=generator), ones)}
    for t in tasks[1:]:
        per_task[t] = split_like(sample(data.sizes[t], data.budget[t], generator), ones)
    if with_dev:
        lengths = [len(b) for b in per_task[target]]
        per_task[DEV] = split_like(sample(data.sizes[DEV], data.sizes[target], generator), lengths)
    return finish([Step(indices={t: pieces[i] for t, pieces in per_task.items()}) for i in range(steps)])


def task_batches(data: EpochData, task: str, generator: torch.Generator, first: bool) -> list[Tensor]:
    """One task's examples of the epoch in batches: a pass over the target (``first``), else its budget."""
    n = data.sizes[task]
    picked = torch.randperm(n, generator=generator) if first else sample(n, data.budget[task], generator)
    return chunks(picked, data.batch_size)


def sampled_plan(data: EpochData, tasks: Sequence[str], generator: torch.Generator) -> list[Step]:
    """Each step holds one task's batch; the epoch's batches of every task in one seeded shuffle.

    The schedule of multitask NLP (MT-DNN shuffles the single-task batches of every task; jiant samples one
    task per step). Examples per task are the budget's, as in :func:`mixed_plan`; steps are the sum of
    every task's batches, the same as αVIL's per-task blocks (:func:`block_plan`) at the same budget.
    """
    batches = [(t, b) for i, t in enumerate(tasks) for b in task_batches(data, t, generator, first=i == 0)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return finish([Step(indices={batches[i][0]: batches[i][1]}) for i in order])


def block_plan(data: EpochData, tasks: Sequence[str], generator: torch.Generator) -> list[Step]:
    """The batches of :func:`sampled_plan` without the shuffle: one named block per task, in ``tasks``' order."""
    steps: list[Step] = []
    for i, task in enumerate(tasks):
        steps += block(task, [{task: b} for b in task_batches(data, task, generator, first=i == 0)])
    return steps


def finish(steps: list[Step]) -> list[Step]:
    """The epoch's plan, checked: an empty one means a training split is empty.

    The epoch's last *executed* step closes it (the LightningModule knows which: the trainer may cut
    the plan short), so no step is marked here.
    """
    if not steps:
        raise ValueError("the schedule of an epoch is empty: is a training split empty?")
    return steps


def group_by_length(
    steps: list[Step], lengths: Mapping[str, Tensor], window: int, generator: torch.Generator
) -> list[Step]:
    """The plan with each key's examples regrouped by length inside every ``window`` consecutive steps of a block.

    Padding follows the longest example of a batch, so batches of similar lengths waste less work. Within a
    window, a key's examples are sorted by length (ties in a seeded random order) and dealt back in runs of
    the steps' own sizes to the steps in a seeded random order: every step keeps its tasks and their batch
    sizes, so the budget, the optimizer steps and the examples each task sees are the plan's, and only which
    examples share a batch changes. Keys without ``lengths`` (images) are left as they are.
    """
    out = [replace(s, indices=dict(s.indices)) for s in steps]
    # windows never straddle two blocks (αVIL's and ForkMerge's phases each draw their own examples)
    windows, start = [], 0
    for i in range(1, len(out) + 1):
        if i == len(out) or i - start == window or out[i].block != out[start].block:
            windows.append(range(start, i))
            start = i
    for key, length in lengths.items():
        for span in windows:
            holding = [i for i in span if key in out[i].indices]
            if len(holding) < 2:
                continue
            pooled = torch.cat([out[i].indices[key] for i in holding])
            tie = torch.randperm(len(pooled), generator=generator)
            pooled = pooled[tie][torch.argsort(length[pooled[tie]], stable=True)]
            order = [holding[j] for j in torch.randperm(len(holding), generator=generator).tolist()]
            pieces = pooled.split([len(out[i].indices[key]) for i in order])
            for i, piece in zip(order, pieces):
                out[i].indices[key] = piece
    return out


def shard(steps: list[Step], rank: int, world: int) -> list[Step]:
    """This process's share of each planned step: every ``world``-th example of each key, from ``rank``.

    The plan is the same on every process (it depends only on seed and epoch), so the steps, their
    global batches and their order are those of a single process whatever ``world`` is. A key with fewer
    examples in a step than there are processes is left out of that step on every process (each process
    must hold every key it trains on); ``counts`` keeps the step's global sizes.
    """
    if world == 1:
        return steps
    out = []
    for s in steps:
        kept = {k: v for k, v in s.indices.items() if len(v) >= world}
        if not kept:  # a sampled step of a last batch smaller than the processes: dropped on every process alike
            continue
        out.append(
            replace(
                s, indices={k: v[rank::world] for k, v in kept.items()}, counts={k: len(v) for k, v in kept.items()}
            )
        )
    return out


class _StepDataset(Dataset):
    def __init__(self, steps: list[Step], splits: Mapping[str, TaskData]):
        self.steps, self.splits = steps, splits

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> Step:
        step = self.steps[i]
        return replace(step, data={k: self.splits[k].batch(idx) for k, idx in step.indices.items()})


class _ChunkDataset(Dataset):
    def __init__(self, data: TaskData, batch_size: int):
        self.data, self.chunks = data, chunks(torch.arange(len(data)), batch_size)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.data.batch(self.chunks[i])


def _identity(x: Any) -> Any:
    return x


def step_loader(steps: list[Step], splits: Mapping[str, TaskData], num_workers: int = 0) -> DataLoader:
    """A DataLoader that yields the planned steps, in order, with their batches collated."""
    return DataLoader(
        _StepDataset(steps, splits), batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_identity
    )


def eval_loader(data: TaskData, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Sequential batches over a whole split, for validation and test."""
    return DataLoader(
        _ChunkDataset(data, batch_size), batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_identity
    )
