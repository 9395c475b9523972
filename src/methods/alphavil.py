"""αVIL: α-Variable Importance Learning (Kourdis, Gordon-Hall, Gorinski; arXiv 2405.07769).

Per epoch, every task (the target first) trains a model delta from the same parameters θ on its
share of the epoch's budget (``task.budget``: the target's pass, each auxiliary's count), with its loss
scaled by the task's weight. One α per task is then tuned
on the target's dev loss to mix the deltas, θ ← θ + Σ_t α_t δ_t, and the task weights move with α.

Implementation choices (every one a config option; see :class:`AlphaVILConfig`):
    * Deltas live in one flat buffer per task (``delta_dtype``; ``auto``: the parameters' own dtype), on
      the parameters' device, memory O(K·|θ|); no autograd graph
      is kept through the mixture: ∂L/∂α_t = ⟨∇_θ L(θ + Σ α δ), δ_t⟩ is exact, so each α-step costs one
      forward/backward on a dev batch plus K dot products.
    * α-steps and the dev-loss probes run in eval mode (no dropout), so α sees the model it will get.
    * With ``reset_optimizer``, every task's block starts from the optimizer state of the epoch's start,
      and the epoch continues with the state the target's block ended with (the target's moments).
    * ``dev_loss_before``/``dev_loss_after`` are the target loss on the first α-step's dev batch at the
      initial and the final α.
    * α lives on a box (``alpha_min`` ≤ α_t ≤ ``alpha_max``, clamped after each step) or on the simplex
      (α ≥ 0, Σα = 1, projected after each step: θ + Σαδ is then a convex combination of the task branches
      θ + δ_t, as in ForkMerge's merge). The simplex has no scale, so there α starts from the weights
      normalised (w/Σw) and the weight rule reads α relative to the target's, α_t/α_target (capped at
      ``alpha_max``): under ``replace`` α then carries over exactly from one epoch to the next.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from src.data.schedule import DEV, Step, block, block_plan, chunks, finish, sample
from src.flat import assign, flat_grad
from src.methods.branching import BranchingMethod
from src.methods.options import WEIGHT_UPDATES, AlphaVILConfig

log = logging.getLogger(__name__)

DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}  # auto: the parameters' dtype


# --- the pure parts: testable on small tensors without a Trainer ---------------------------------
def alpha_gradient(grad: Tensor, deltas: Tensor) -> Tensor:
    """∂L/∂α_t = ⟨g, δ_t⟩ for each row δ_t of ``deltas`` (computed row by row to bound memory)."""
    return torch.stack([torch.dot(d.to(grad.dtype), grad) for d in deltas])


def relative_deltas(deltas: Tensor) -> Tensor:
    """The deltas in the target's basis: the target's own (row 0), then each auxiliary's less the target's."""
    out = deltas.clone()
    out[1:] -= deltas[0]
    return out


def mix(theta: Tensor, deltas: Tensor, alpha: Tensor) -> Tensor:
    """θ + Σ_t α_t δ_t."""
    out = theta.clone()
    for a, d in zip(alpha.tolist(), deltas):
        out.add_(d.to(out.dtype), alpha=a)
    return out


def project_simplex(v: Tensor) -> Tensor:
    """The Euclidean projection of ``v`` onto the simplex {a ≥ 0, Σa = 1} (Duchi et al., ICML 2008, fig. 1)."""
    x = v.double()  # in float64, and the largest coordinate always kept: robust to huge steps
    u, _ = torch.sort(x, descending=True)
    excess = torch.cumsum(u, 0) - 1  # Σ of the k largest, less 1
    k = torch.arange(1, len(x) + 1, dtype=x.dtype, device=x.device)
    positive = u - excess / k > 0
    positive[0] = True
    kept = int(positive.nonzero().max())  # the number of nonzero coordinates, less 1
    out = (x - excess[kept] / (kept + 1)).clamp_min(0)
    return (out / out.sum()).to(v.dtype)  # Σ = 1 up to the last bit, whatever the rounding above


def relative_to_target(alpha: Tensor, cap: float) -> Tensor:
    """α_t/α_target, capped at ``cap`` (also where α_target is 0): simplex α read as weights, the target's 1."""
    return (alpha / alpha[0].clamp_min(torch.finfo(alpha.dtype).tiny)).clamp_max(cap)


def update_weights(w: Tensor, alpha: Tensor, rule: str, w_min: float) -> Tensor:
    """The task weights after an epoch's α: additive w+(α−1), multiplicative w·α, or replace by α.

    The first task is the target, and its weight stays 1 whatever α does: it scales the target's own block,
    which must go on training the model the run is for (at weight 0 its delta would be only the optimizer's
    momentum), and it is the unit the auxiliaries' weights are read in. α_target still decides how much of
    each epoch's target delta enters θ.
    """
    if rule == "additive":
        new = w + (alpha - 1)
    elif rule == "multiplicative":
        new = w * alpha
    elif rule == "replace":
        new = alpha.clone()
    else:
        raise ValueError(f"weight_update={rule!r}: must be one of {', '.join(WEIGHT_UPDATES)}")
    new = new.clamp_min(w_min)
    new[0] = 1.0  # the target's, pinned
    return new


class AlphaVIL(BranchingMethod):
    """αVIL; the options are documented on :class:`AlphaVILConfig`."""

    Config = AlphaVILConfig
    counters = ("skipped_alpha_steps",)  # plain-Python state a checkpoint keeps
    distributed = True
    schedule = "blocks"  # sampled batches without the shuffle: one block per task, then the α-steps
    step_option = "method.alpha_lr"
    floor_option = "method.w_min"
    ceiling_option = "method.alpha_max"
    shorten_with = "task.max_train_examples or task.budget"

    def __init__(self, **options):
        super().__init__(**options)
        self.register_buffer("alpha", torch.ones(0))
        self.skipped_alpha_steps = 0  # α-steps whose loss or gradient was NaN/Inf, over the whole run
        self._clear_epoch()

    def _clear_epoch(self) -> None:
        """Drop the per-epoch buffers (the deltas, the dev probe): they never cross an epoch."""
        self.deltas: Tensor | None = None
        self._probe = None
        self._record: dict[str, float] = {}

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.alpha = torch.ones(len(tasks))

    # --- schedule: one block per task (target first) from the budget, then one of α-steps -------------
    def plan_epoch(self, data, generator) -> list[Step]:
        steps = block_plan(data, self.names, generator)
        if self.cfg.alpha_steps:
            dev = sample(data.sizes[DEV], self.cfg.alpha_steps * data.batch_size, generator)
            steps += block("alpha", [{DEV: c} for c in chunks(dev, data.batch_size)][: self.cfg.alpha_steps])
        return finish(steps)

    # --- steps ------------------------------------------------------------------------------------
    def step(self, module, step: Step) -> None:
        if step.block == "alpha":
            self._alpha_step(module, step)
        else:
            self._task_step(module, step)

    def _task_step(self, module, step: Step) -> None:
        k = self.index(step.block)
        if step.first_in_block:  # the epoch starts with the target's block, which forks θ
            self.start_branch(module, first=k == 0, reset_optimizer=self.cfg.reset_optimizer)
            if k == 0:
                dtype = DTYPES[self.cfg.delta_dtype] or self.theta.dtype
                self.deltas = self.theta.new_zeros(len(self.names), self.theta.numel(), dtype=dtype)
        losses = module.task_losses(step.data)
        module.backward_and_step(self.w[k].to(losses[step.block]) * losses[step.block])
        if step.last_in_block:  # the epoch continues with the optimizer state the target's block ended with
            self.deltas[k] = (self.end_branch(module, keep_optimizer=k == 0) - self.theta).to(self.deltas.dtype)
            if k == len(self.names) - 1 and self.cfg.delta_basis == "target":
                self.deltas[1:] = relative_deltas(self.deltas)[1:]
            if k == len(self.names) - 1 and not self.cfg.alpha_steps:
                self.alpha = self._initial_alpha()
                self._close_epoch(module)

    # --- α's domain: the box or the simplex, in one place -------------------------------------------
    def _initial_alpha(self) -> Tensor:
        start = torch.ones_like(self.w) if self.cfg.alpha_init == "ones" else self.w.clone()
        return start / start.sum() if self.cfg.alpha_domain == "simplex" else self._feasible(start)

    def _feasible(self, alpha: Tensor) -> Tensor:
        """α brought back into its domain: clamped to the box, or projected onto the simplex."""
        if self.cfg.alpha_domain == "simplex":
            return project_simplex(alpha)
        return alpha.clamp(self.cfg.alpha_min, self.cfg.alpha_max)

    def _as_weights(self, alpha: Tensor) -> Tensor:
        """α as the weight rule reads it: itself on the box, relative to the target's on the simplex."""
        if self.cfg.alpha_domain == "simplex":
            return relative_to_target(alpha, self.cfg.alpha_max)
        return alpha

    def _dev_loss(self, module, batch, grad: bool) -> Tensor:
        """This process's share of the target's mean loss on the step's dev batch (see ``global_mean``)."""
        with torch.set_grad_enabled(grad):
            return module.global_mean(module.loss(self.target, batch), DEV)

    def _alpha_step(self, module, step: Step) -> None:
        params = module.trainable()
        batch = step.data[DEV]
        if step.first_in_block:
            self.alpha = self._initial_alpha()
            self._probe = batch
            self._record = {"alpha_steps_taken": 0.0, "skipped_alpha_steps": 0.0}
        with module.evaluating():
            assign(params, mix(self.theta, self.deltas, self.alpha))
            loss = self._dev_loss(module, batch, grad=True)
            grads = module.grad(loss, params)
        # α's arithmetic in at least float32, whatever the parameters' dtype (bf16-true training); the
        # gradient and loss of the whole step's dev batch, so every process takes the same α-step
        g = module.reduce_mean(flat_grad(grads, params).to(torch.promote_types(self.theta.dtype, torch.float32)))
        loss = module.reduce_mean(loss.detach())
        if step.first_in_block:
            self._record["dev_loss_before"] = loss.item()
        grad_alpha = alpha_gradient(g, self.deltas)
        if math.isfinite(loss.item()) and bool(torch.isfinite(grad_alpha).all()):
            step_alpha = self.alpha - self.cfg.alpha_lr * grad_alpha.to(self.alpha)
            self.alpha = self._feasible(step_alpha)
            self._record["alpha_steps_taken"] += 1
        else:
            self.skipped_alpha_steps += 1
            self._record["skipped_alpha_steps"] += 1
            log.warning("αVIL: skipped an α-step with a non-finite dev loss or gradient (loss=%s)", loss.item())
        module.log("alpha/dev_loss_step", loss.detach(), on_step=True, on_epoch=False, batch_size=1)
        if step.last_in_block:
            self._close_epoch(module)

    def _close_epoch(self, module) -> None:
        """θ ← θ + Σ α δ (with the target block's optimizer state), then the weight update; free the epoch."""
        self.merge(module, mix(self.theta, self.deltas, self.alpha))
        if self._probe is not None:
            with module.evaluating():
                loss = self._dev_loss(module, self._probe, grad=False)
            self._record["dev_loss_after"] = float(module.reduce_mean(loss))
        self.w = update_weights(self.w, self._as_weights(self.alpha), self.cfg.weight_update, self.cfg.w_min)
        record = {f"alpha/{t}": float(a) for t, a in zip(self.names, self.alpha)}
        record.update({"method/" + k: v for k, v in self._record.items()})
        self._clear_epoch()
        self._record = record

    def end_epoch(self, module) -> dict[str, float]:
        record, self._record = self._record, {}
        return record

    # --- state: α is a buffer; the count of skipped steps is plain Python ---------------------------
