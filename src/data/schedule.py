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
    step's sizes. ``block`` names the phase the step belongs to (a task name for αVIL's per-task blocks, ``"alpha"``
    for its α-steps, ``None`` for mixed batches). After loading, ``data`` holds the collated batches.
    """

    indices: dict[str, Tensor]
    block: str | None = None
    first_in_block: bool = False
    last_in_block: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # the whole step's examples per key, when sharded


@dataclass(frozen=True)
class EpochData:
    """What a method plans an epoch from.

    Attributes:
        sizes: training examples per task, and the dev split's size under :data:`DEV`.
        batch_size: the target's examples per step.
        mixed: examples of each task per epoch in mixed batches (``task.mixing``; the target's is its size).
    """

    sizes: Mapping[str, int]
    batch_size: int
    mixed: Mapping[str, int]


def mixing_budget(sizes: Mapping[str, int], target: str, rule: str, temperature: float = 2.0) -> dict[str, int]:
    """Examples of each task per epoch when every step holds a batch of every task.

    An epoch is one pass over the target. The rules of multitask NLP set each task's share r_t:
    ``equal`` gives every auxiliary as many examples as the target; ``proportional`` r_t ∝ size_t (one
    pass over every task: a large auxiliary is seen as often as in its own training); ``temperature``
    r_t ∝ size_t^(1/T), between the two (T=1: proportional; T→∞: equal).
    """
    n = sizes[target]
    if rule == "equal":
        share = {t: 1.0 for t in sizes}
    elif rule == "proportional":
        share = {t: sizes[t] / n for t in sizes}
    elif rule == "temperature":
        share = {t: (sizes[t] / n) ** (1 / temperature) for t in sizes}
    else:
        raise ValueError(f"mixing={rule!r}: must be equal, proportional or temperature")
    return {t: max(1, round(n * share[t])) for t in sizes if t != DEV}


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


def finish(steps: list[Step]) -> list[Step]:
    """The epoch's plan, checked: an empty one means a training split is empty.

    The epoch's last *executed* step closes it (the LightningModule knows which: the trainer may cut
    the plan short), so no step is marked here.
    """
    if not steps:
        raise ValueError("the schedule of an epoch is empty: is a training split empty?")
    return steps


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
