"""SLGrad: sample-level weighting for multi-task learning with auxiliary tasks (Grégoire, Chaudhary,
Verboven; Applied Intelligence 54, 2024; arXiv 2306.04519).

Every step holds a batch of every task and a batch of the target's dev split (the paper's hold-out meta
objective). Each training example i of each task k gets a weight from how well its own gradient on the
shared parameters aligns with the gradient of the target's dev loss:

    a_{k,i} = cos(∇_θ ℓ_k(x_i), ∇_θ L_dev),   w_{k,i} = max(a_{k,i}, 0) · N / Σ_{j,i'} max(a_{j,i'}, 0),

N the step's number of training examples, so the weights average 1 over the step (with every weight 1 the
step is uniform's). The model steps on Σ_k mean_i w_{k,i} ℓ_k(x_i): an example whose gradient points away
from the target's dev gradient is dropped, one that points along it counts more, and a task's weight (the
mean of its examples' weights, logged per epoch) follows from its examples. The target's own examples are
weighted the same way, as the paper weights every task's samples.

The paper has no public code; this is our reading of its method section. Choices that are ours: the cosine
(not the raw inner product) so that the weights do not scale with the gradients' norms; the normalisation
over the whole step, across tasks; the per-example gradients and the dev gradient are taken in eval mode
(no dropout noise in the comparison) and on the shared parameters only (a head's gradient cannot be compared
with another task's); a step where no example aligns (every cosine ≤ 0) trains uniformly. The per-example
gradients come from ``torch.func`` (:meth:`src.seam.Seam.example_gradients`), ``chunk_size``
examples at a time (only one chunk's gradients are held); each chunk costs one vectorised backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.data.schedule import DEV
from src.flat import cosines, flat_grad
from src.methods.base import WeightingMethod
from src.methods.options import SLGradConfig


def sample_weights(alignments: Tensor, total: Tensor | None = None, count: int | None = None) -> Tensor:
    """``max(a, 0)`` scaled to average 1 over the step; all 1 when nothing aligns.

    ``total`` and ``count`` are the whole step's sum of ``max(a, 0)`` and number of examples (several processes
    each hold a shard); by default those of ``alignments`` itself.
    """
    positive_part = alignments.clamp_min(0)
    total = positive_part.sum() if total is None else total
    count = len(alignments) if count is None else count
    if not total > 0:
        return torch.ones_like(alignments)
    return positive_part * (count / total)


class SLGrad(WeightingMethod):
    """Per-example weights from the cosine of each example's gradient with the target's dev gradient."""

    Config = SLGradConfig
    distributed = True

    def plan_epoch(self, data, generator):
        return self.mixed_plan(data, generator, with_dev=True)

    def alignments(self, module, step) -> dict[str, Tensor]:
        """Each training example's cosine with the whole step's dev gradient, per task (this process's shard)."""
        shared = list(module.shared_parameters().values())
        with module.evaluating():
            dev_loss = module.global_mean(module.loss(self.target, step.data[DEV]), DEV)
            dev = module.reduce_mean(flat_grad(module.grad(dev_loss, shared), shared)).float()
            out = {}
            for task in self.names:
                if task not in step.data:
                    continue
                batch, n = step.data[task], len(step.data[task]["labels"])
                size = self.cfg.chunk_size or n
                pieces = []
                for start in range(0, n, size):  # one chunk's per-example gradients in memory at a time
                    rows = module.example_gradients(task, {k: v[start : start + size] for k, v in batch.items()})
                    rows = rows.float()
                    pieces.append(cosines(rows, dev))
                out[task] = torch.cat(pieces)
        return out

    def step(self, module, step) -> None:
        alignments = self.alignments(module, step)
        flat = torch.cat(list(alignments.values()))
        total = module.reduce_sum(flat.clamp_min(0).sum())
        count = int(module.reduce_sum(flat.new_tensor(float(len(flat)))).item())
        weights = dict(zip(alignments, sample_weights(flat, total, count).split([len(a) for a in alignments.values()])))
        loss = 0.0
        for task, w in weights.items():
            per_example = module.loss(task, step.data[task])
            loss = loss + module.global_mean(w.to(per_example.dtype) * per_example, task)
            module.log(
                f"train/loss/{task}", per_example.mean().detach(), on_step=True, on_epoch=True, batch_size=len(w)
            )
        module.backward_and_step(loss)
        for task, w in weights.items():  # the task's mean example weight over the whole step
            mean = module.reduce_sum(w.sum()) / module.step_size(task, len(w))
            self.observe_weights(torch.tensor([self.index(task)]), mean.reshape(1))
