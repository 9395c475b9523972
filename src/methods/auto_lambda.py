"""Auto-Lambda in its primary-task mode (Liu, James, Davison, Johns; TMLR 2022, arXiv 2202.03091;
official code lorenmt/auto-lambda).

Every step holds a batch of every task and a batch of the target's dev split. The task weights λ (one
per task, the target's included, all starting at ``init`` = 0.1) are learned by a one-step look-ahead:
θ' = θ − η(Σ_k λ_k ∇L_k(θ) + wd·θ) on the training batch, then λ takes an Adam step (``lr`` = 1e-4) on
the target's dev loss at θ'. Its gradient is exact here: ∂L_dev(θ')/∂λ_k = −η ⟨∇L_k(θ), ∇L_dev(θ')⟩, from
the per-task gradients already taken (the official code approximates the same product by finite
differences). The model then steps on Σ_k λ_k L_k with the new λ, as the official trainer does after each
meta step. η and wd are the optimizer's learning rate and weight decay, as in the official virtual step
(which uses SGD's form whatever the optimizer). λ is not constrained, as in the official code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from src.data.schedule import DEV
from src.flat import flat_grad
from src.methods.gradient_weighting import GradientWeighting
from src.methods.options import AutoLambdaConfig


def adam_step(value: Tensor, grad: Tensor, m: Tensor, v: Tensor, step: int, lr: float, betas, eps: float) -> Tensor:
    """One Adam step (torch.optim.Adam's arithmetic) on ``value``; ``m`` and ``v`` are updated in place."""
    b1, b2 = betas
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
    return value - lr * m_hat / (v_hat.sqrt() + eps)


class AutoLambda(GradientWeighting):
    """λ learned by a one-step look-ahead on the target's dev loss; options on :class:`AutoLambdaConfig`."""

    Config = AutoLambdaConfig
    counters = ("meta_steps",)  # plain-Python state a checkpoint keeps
    distributed = True
    scale_heads = True  # λ scales each task's loss
    step_option = "method.lr"
    signed = True  # λ is not constrained (as in the official code); the target's must stay above 0

    def __init__(self, **options):
        super().__init__(**options)
        for name in ("_adam_m", "_adam_v"):
            self.register_buffer(name, torch.zeros(0))
        self.meta_steps = 0

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.w = torch.full((len(tasks),), float(self.cfg.init))
        self._adam_m, self._adam_v = torch.zeros(len(tasks)), torch.zeros(len(tasks))

    def plan_epoch(self, data, generator):
        return self.mixed_plan(data, generator, with_dev=True)

    def lambda_gradient(self, module, grads, dev_batch, lr: float, wd: float) -> Tensor:
        """∂L_dev(θ')/∂λ_k for every task in ``grads`` (rows as in ``grads.tasks``); θ' = θ − lr(Σλ∇L + wd·θ)."""
        shared = list(module.shared_parameters().values())
        head = list(module.task_parameters(self.target).values())
        lam = self.w[[self.index(t) for t in grads.tasks]].to(grads.shared)
        moves = [
            (shared, -lr * (lam @ grads.shared + wd * flat_grad([p.detach() for p in shared], shared))),
            (head, -lr * (lam[0] * grads.heads[self.target] + wd * flat_grad([p.detach() for p in head], head))),
        ]
        with module.displaced(moves):
            dev_loss = module.global_mean(module.loss(self.target, dev_batch), DEV)
            d = module.grad(dev_loss, shared + head)
        # the whole step's dev batch: every process takes the same λ step
        d_shared, d_head = (
            module.reduce_mean(flat_grad(g, p)) for g, p in ((d[: len(shared)], shared), (d[len(shared) :], head))
        )
        out = -lr * (grads.shared @ d_shared)
        out[0] = out[0] - lr * (grads.heads[self.target] @ d_head)
        return out

    def prepare(self, module, grads, step) -> None:
        """This step's meta-step: Adam on the look-ahead dev loss's gradient in λ."""
        index = [self.index(t) for t in grads.tasks]
        group = module.optimizers().optimizer.param_groups[0]
        lr, wd = module.learning_rate(), group.get("weight_decay", 0.0)
        grad = self.lambda_gradient(module, grads, step.data[DEV], lr, wd).to(self.w)
        if bool(torch.isfinite(grad).all()):
            self.meta_steps += 1
            m, v = self._adam_m[index], self._adam_v[index]
            new = adam_step(self.w[index], grad, m, v, self.meta_steps, self.cfg.lr, self.cfg.betas, self.cfg.eps)
            self.w[index], self._adam_m[index], self._adam_v[index] = new, m, v

    def coefficients(self, module, grads, step) -> Tensor:
        """λ: the network steps on Σ λ_k L_k."""
        return self.w[[self.index(t) for t in grads.tasks]]

    def update(self, module, grads, coefficients) -> None:
        """λ is the weight itself; nothing to observe."""
