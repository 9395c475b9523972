"""ForkMerge (Jiang, Chen, Fu, Wang, Long; NeurIPS 2023, arXiv 2301.12618; official code thuml/ForkMerge).

Each epoch forks the model into branches that all start from the same parameters θ: one trains on the
target alone, and one per auxiliary trains on mixed batches of the target and that auxiliary (loss
L_target + L_k). Each branch makes one pass over the target's data, and each auxiliary branch draws that
auxiliary's budget (``task.budget``): the auxiliaries are trained on the run's budget, the target on K+1
passes per epoch, which results.json records (``budget_multiple``). The branches are then merged,
θ ← Σ_b λ_b θ_b with Σ_b λ_b = 1, the λ chosen on the target's dev split by the official greedy search:
branches ranked by their own dev loss, the best gets λ = 1, then each next one in turn tries λ = a·u for
a in ``alphas`` (u = the sum of the λ so far over the number of branches placed) and keeps the best;
λ is normalised at the end. A task's logged weight is the λ of the branch it trained in (the target's:
the target-only branch's); ``merge/<branch>`` records them too.

Choices of ours, in the official code's spirit: the fork-merge period is one epoch (the official NYUv2
runs merge every 30 of 200 epochs); the search scores candidates by the target's mean dev loss on up to
``merge_examples`` dev examples (the official code by the validation metric); every branch starts from
the epoch-start optimizer state and the merged model continues with the target-only branch's (the
official code keeps one optimizer per branch); the official pruning stage that first ranks auxiliaries
and keeps the top-k groups is left out: every auxiliary has its own branch.

How it differs from αVIL (src/methods/alphavil.py): αVIL trains each task *alone* from θ and tunes an α per
task (in a box, or on the simplex) by gradient steps on the dev loss, θ + Σ α_t δ_t, with the weights then
scaling each task's next block. ForkMerge trains the target *in every branch*, merges a convex combination
chosen by a grid search, and keeps no weights between epochs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from src.data.schedule import DEV, Step, block, chunks, finish, sample, split_like
from src.flat import assign
from src.methods.branching import BranchingMethod
from src.methods.options import ForkMergeConfig


def greedy_merge(branch_losses: list[float], score, alphas: list[float]) -> list[float]:
    """The official greedy search: normalised λ per branch, ``score(λ)`` the dev loss of a merge (lower wins)."""
    order = sorted(range(len(branch_losses)), key=branch_losses.__getitem__)
    lam = [0.0] * len(branch_losses)
    lam[order[0]] = 1.0
    for placed, b in enumerate(order[1:], start=1):
        upper = sum(lam) / placed
        best, best_loss = 0.0, math.inf
        for a in alphas:
            lam[b] = a * upper
            loss = score([x / sum(lam) for x in lam])
            if loss < best_loss:
                best, best_loss = a * upper, loss
        lam[b] = best
    total = sum(lam)
    return [x / total for x in lam]


class ForkMerge(BranchingMethod):
    """Fork into target(+auxiliary) branches, merge on the target's dev split; options on :class:`ForkMergeConfig`."""

    Config = ForkMergeConfig
    distributed = True
    schedule = "branches"  # the budget's auxiliary examples; the target's pass in every branch (recorded)
    target_may_vanish = True  # merge coefficients: the merge may keep the branch with the auxiliaries alone
    shorten_with = "task.max_train_examples"

    def __init__(self, **options):
        super().__init__(**options)
        self._clear_epoch()

    def _clear_epoch(self) -> None:
        self.ends: dict[str, Tensor] = {}  # branch → its parameters at the branch's end
        self._dev: list[dict] = []
        self._record: dict[str, float] = {}

    def plan_epoch(self, data, generator) -> list[Step]:
        target = chunks(torch.randperm(data.sizes[self.target], generator=generator), data.batch_size)
        lengths = [len(b) for b in target]
        steps = block(self.target, [{self.target: b} for b in target])
        for aux in self.names[1:]:
            order = chunks(torch.randperm(data.sizes[self.target], generator=generator), data.batch_size)
            extra = split_like(sample(data.sizes[aux], data.budget[aux], generator), lengths)
            steps += block(aux, [{self.target: b, **({aux: e} if len(e) else {})} for b, e in zip(order, extra)])
        dev = sample(data.sizes[DEV], min(self.cfg.merge_examples, data.sizes[DEV]), generator)
        steps += block("merge", [{DEV: c} for c in chunks(dev, data.batch_size)])
        return finish(steps)

    def step(self, module, step: Step) -> None:
        if step.block == "merge":
            self._dev.append(step.data[DEV])
            if step.last_in_block:
                self._merge(module)
            return
        if step.first_in_block:  # the target-only branch comes first and forks θ
            self.start_branch(module, first=step.block == self.target)
        module.backward_and_step(sum(module.task_losses(step.data).values()))
        if step.last_in_block:  # the merged model continues with the target-only branch's optimizer state
            self.ends[step.block] = self.end_branch(module, keep_optimizer=step.block == self.target)

    def _dev_loss(self, module, flat: Tensor) -> float:
        """The target's mean loss on the merge examples (all processes' shards) at parameters ``flat``."""
        assign(module.trainable(), flat)
        total = torch.zeros(2, dtype=torch.float64, device=flat.device)
        with torch.no_grad():
            for batch in self._dev:
                losses = module.loss(self.target, batch)
                total += torch.stack([losses.sum().double(), torch.tensor(len(losses), device=flat.device).double()])
        total = module.reduce_sum(total)
        return float(total[0] / total[1])

    def _merge(self, module) -> None:
        branches = list(self.ends)
        stacked = torch.stack([self.ends[b] for b in branches])
        with module.evaluating():
            own = [self._dev_loss(module, self.ends[b]) for b in branches]
            lam = greedy_merge(
                own, lambda w: self._dev_loss(module, torch.tensor(w).to(stacked) @ stacked), self.cfg.alphas
            )
        self.merge(module, torch.tensor(lam).to(stacked) @ stacked)
        self.w = torch.tensor([lam[branches.index(t)] for t in self.names], dtype=self.w.dtype, device=self.w.device)
        record = {f"merge/{b}": x for b, x in zip(branches, lam)}
        record.update({f"branch_dev_loss/{b}": x for b, x in zip(branches, own)})
        self._clear_epoch()
        self._record = record

    def end_epoch(self, module) -> dict[str, float]:
        record, self._record = self._record, {}
        return record
