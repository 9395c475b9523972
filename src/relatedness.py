"""Cheap estimates of how much each auxiliary task helps the target, measured during one training run.

``callbacks=relatedness`` adds :class:`RelatednessProbe` to the usual checkpoints. Every ``every_n_steps``
steps that hold a batch of the target and of an auxiliary (``task.batching=mixed``), before the step's own
update and on the model in eval mode (no dropout, no random draws: the run trains exactly as without the
probe), it measures for each task k, from its gradient g_k on the shared parameters:

- ``lookahead``: TAG's inter-task affinity (Fifty, Amid, Zhao, Yu, Anil, Finn; NeurIPS 2021), the relative
  drop of the target's loss on the step's target batch after a plain gradient step with g_k alone:
  Z_k = 1 − L_t(θ − η g_k) / L_t(θ), η the optimizer's learning rate (TAG takes the optimizer's own update;
  we take its gradient-descent form, as HydaLearn's trial steps do, so no optimizer state is touched).
- ``cosine``: the cosine of g_k with the target's training gradient on the same step.
- ``influence``: η ⟨g_k, g_dev⟩, the first-order drop of the target's *dev* loss from one step on task k's
  batch, g_dev taken on the first ``dev_examples`` examples of the target's dev split. This is the
  first-order term of an influence estimate in the spirit of MTIF (Tu et al. 2025; instance-level influence
  across tasks): the Hessian is taken as the identity (no inverse-Hessian product) and the per-example terms
  are summed into the task's batch, as TracIn (Pruthi et al., NeurIPS 2020) sums gradient products over
  training.

Each is the mean over the probed steps, recorded in results.json under ``relatedness`` with the number of
probed steps and the seconds the probe took. The probe's passes are not the method's: the run's spending
(``optimizer_steps``, ``passes``) is what it would be without it. Its running sums are checkpointed, so a
resumed run continues them. Under several processes the gradients and losses are the whole step's (the
module's reductions), so every process records the same values.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch

from src.flat import cosines, flat_grad

ESTIMATES = ("lookahead", "cosine", "influence")


class RelatednessProbe(pl.Callback):
    """Per-auxiliary look-ahead affinity, gradient cosine and first-order dev influence, every few steps."""

    def __init__(self, every_n_steps: int = 5, dev_examples: int = 256):
        if every_n_steps < 1 or dev_examples < 1:
            raise ValueError(f"every_n_steps={every_n_steps}, dev_examples={dev_examples}: both must be at least 1")
        self.every_n_steps, self.dev_examples = every_n_steps, dev_examples
        self.sums: dict[str, dict[str, float]] = {e: {} for e in ESTIMATES}
        self.counts: dict[str, int] = {}
        self.seconds = 0.0
        self._dev_batch: dict[str, torch.Tensor] | None = None

    # --- Lightning hooks ------------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        target = pl_module.target
        tasks = [t for t in pl_module.specs if t in batch.data]
        if target not in tasks or len(tasks) < 2:  # sampled batching: a step holds one task
            return
        start = time.perf_counter()
        for estimate, values in self.measure(trainer, pl_module, batch, tasks).items():
            for task, value in values.items():
                self.sums[estimate][task] = self.sums[estimate].get(task, 0.0) + value
        for task in tasks:
            self.counts[task] = self.counts.get(task, 0) + 1
        self.seconds += time.perf_counter() - start

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums, "counts": self.counts, "seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sums, self.counts, self.seconds = state_dict["sums"], state_dict["counts"], state_dict["seconds"]

    # --- the estimates --------------------------------------------------------------------------
    def dev_batch(self, trainer, module) -> dict[str, torch.Tensor]:
        if self._dev_batch is None:
            dev_set = trainer.datamodule.dev_set
            batch = dev_set.batch(torch.arange(min(self.dev_examples, len(dev_set))))
            self._dev_batch = {k: v.to(module.device) for k, v in batch.items()}
        return self._dev_batch

    def measure(self, trainer, module, step, tasks: list[str]) -> dict[str, dict[str, float]]:
        """This step's estimates for every task in ``tasks`` (the target's own included, as a reference)."""
        target, spent = module.target, dict(module.spent)
        shared = list(module.shared_parameters().values())
        lr = module.learning_rate()
        try:
            with module.evaluating(), module.on_step(step):  # the whole step's sizes under several processes
                rows = []
                for task in tasks:
                    loss = module.global_mean(module.loss(task, step.data[task]), task)
                    rows.append(flat_grad(torch.autograd.grad(loss, shared, allow_unused=True), shared))
                grads = module.reduce_mean(torch.stack(rows)).float()
                dev_loss = module.loss(target, self.dev_batch(trainer, module)).mean()
                dev = flat_grad(torch.autograd.grad(dev_loss, shared, allow_unused=True), shared).float()
                with torch.no_grad():
                    batch = step.data[target]
                    before = module.reduce_mean(module.global_mean(module.loss(target, batch), target))
                    after = []
                    for row in grads:
                        with module.displaced([(shared, -lr * row)]):
                            after.append(module.reduce_mean(module.global_mean(module.loss(target, batch), target)))
        finally:
            module.spent.update(spent)  # the probe's passes are not the method's
        own = grads[tasks.index(target)]
        cosine = cosines(grads, own)
        return {
            "lookahead": {t: float(1 - a / before) for t, a in zip(tasks, after)},
            "cosine": {t: float(c) for t, c in zip(tasks, cosine)},
            "influence": {t: float(lr * (g @ dev)) for t, g in zip(tasks, grads)},
        }

    def results(self) -> dict[str, Any]:
        """What results.json records under ``relatedness``: each estimate's mean over the probed steps."""
        means = {e: {t: s / self.counts[t] for t, s in sums.items()} for e, sums in self.sums.items()}
        return {"relatedness": {**means, "probed_steps": dict(self.counts), "seconds": self.seconds}}
