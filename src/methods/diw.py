"""DIW: Dynamic Importance Weighting (Fang, Lu, Niu, Sugiyama; NeurIPS 2020, arXiv 2006.04662), over tasks.

Every step holds a batch of every training task and a batch of the target's dev split. Kernel mean
matching (KMM) between the training examples and the dev batch, in the feature space of the current
model, gives each training example an importance weight β_i; the loss is Σ β_i ℓ_i / Σ β_i. A task's
weight is the mean β of its examples. Examples that look like the target's dev data count more.

KMM: minimise ½ βᵀKβ − κᵀβ subject to 0 ≤ β_i ≤ B and |Σ β_i − n| ≤ nε, with K_ij = k(x_i, x_j),
κ_i = (n/m) Σ_j k(x_i, z_j) and a Gaussian kernel k. It is solved in torch by accelerated projected
gradient (FISTA), warm-started from the previous step's β; the projection onto the box-and-slab set is
exact up to a bisection on one shift.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from src.data.schedule import DEV, Step
from src.methods.base import WeightingMethod
from src.methods.options import DIWConfig


# --- the pure parts: testable on small tensors without a Trainer ---------------------------------
def sq_dists(a: Tensor, b: Tensor) -> Tensor:
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T).clamp_min(0)


def median_bandwidth(x: Tensor, z: Tensor) -> float:
    """σ = the median distance between distinct points of x ∪ z (the median heuristic; ≤ 512 points)."""
    points = torch.cat([x, z])
    if len(points) > 512:  # the heuristic needs a typical distance, not all of them: an even subsample
        points = points[torch.linspace(0, len(points) - 1, 512, device=points.device).long()]
    n = len(points)
    if n < 2:
        return 1.0
    d2 = sq_dists(points, points).flatten()
    # The n diagonal zeros sort first, so this order statistic is the lower median of the off-diagonal.
    med = d2.kthvalue(n + (n * n - n + 1) // 2).values.item()
    return math.sqrt(med) if med > 0 else 1.0


def kmm_problem(x: Tensor, z: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """K (n×n) and κ (n) of kernel mean matching of the training points x to the dev points z."""
    gamma = 1.0 / (2 * sigma**2)
    K = torch.exp(-gamma * sq_dists(x, x))
    kappa = torch.exp(-gamma * sq_dists(x, z)).mean(1) * len(x)
    return K, kappa


def project(v: Tensor, B: float, lo: float, hi: float) -> Tensor:
    """Euclidean projection onto {0 ≤ β ≤ B, lo ≤ Σβ ≤ hi}: clip(v, 0, B) where its sum is in [lo, hi], else
    clip(v − τ, 0, B) with its sum at the nearer bound.

    f(τ) = Σ clip(v − τ, 0, B) is piecewise linear and non-increasing, with breakpoints at each v_i − B and v_i; τ
    is found exactly, on the segment where f crosses the target, from the sorted v and its suffix sums (a few
    vectorised operations, none of them a host synchronisation, so the solver runs on a GPU at its speed).
    """
    b = v.clamp(0, B)
    s = b.sum()
    target = s.clamp(lo, hi)
    n = len(v)
    vs = v.sort().values
    suffix = torch.cat([vs.flip(0).cumsum(0).flip(0), vs.new_zeros(1)])  # suffix[j] = Σ_{i ≥ j} vs_i

    def above(tau: Tensor) -> Tensor:  # Σ max(v − τ, 0) at each τ
        j = torch.searchsorted(vs, tau, right=True)  # how many v_i ≤ τ
        return suffix[j] - (n - j) * tau

    points = torch.cat([vs - B, vs]).sort().values
    f = above(points) - above(points + B)  # clip(x, 0, B) = max(x, 0) − max(x − B, 0); non-increasing
    k = torch.searchsorted(-f, -target.reshape(1)).clamp(1, 2 * n - 1)  # first breakpoint with f ≤ target
    p0, p1, f0, f1 = points[k - 1], points[k], f[k - 1], f[k]
    drop = f0 - f1
    tau = p0 + torch.where(drop > 0, (f0 - target) / torch.where(drop > 0, drop, 1.0) * (p1 - p0), 0.0)
    return torch.where((lo <= s) & (s <= hi), b, (v - tau).clamp(0, B))


def kmm_solve(K: Tensor, kappa: Tensor, B: float, eps: float, steps: int, beta0: Tensor | None = None) -> Tensor:
    """β minimising ½βᵀKβ − κᵀβ on the KMM constraint set, by FISTA from ``beta0`` (default: ones)."""
    n = len(kappa)
    lo, hi = n * (1 - eps), n * (1 + eps)
    lipschitz = K.sum(1).max().item()  # ≥ λ_max(K) for a non-negative K (Gershgorin)
    beta = project(beta0.clone() if beta0 is not None else torch.ones_like(kappa), B, lo, hi)
    y, t = beta, 1.0
    for _ in range(steps):
        nxt = project(y - (K @ y - kappa) / lipschitz, B, lo, hi)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = nxt + ((t - 1) / t_next) * (nxt - beta)
        beta, t = nxt, t_next
    return beta


def kmm_weights(
    x: Tensor, z: Tensor, B: float, eps: float, steps: int, bandwidth: Any = "median", beta0: Tensor | None = None
) -> Tensor:
    """Importance weights of the training points x for the dev points z (kernels in float32, solver in float64)."""
    x, z = x.float(), z.float()
    sigma = median_bandwidth(x, z) if bandwidth == "median" else float(bandwidth)
    K, kappa = kmm_problem(x, z, sigma)
    return kmm_solve(K.double(), kappa.double(), B, eps, steps, None if beta0 is None else beta0.double()).float()


class DIW(WeightingMethod):
    """DIW over tasks; the options are documented on :class:`DIWConfig`.

    State: ``beta`` (the last solution over a step's examples, the next solve's warm start; empty before
    the first) and ``last_task_beta`` (each task's mean β at the last solve) are buffers; a task's weight
    is the mean β of its examples over the epoch.
    """

    Config = DIWConfig
    counters = ("steps_done",)  # plain-Python state a checkpoint keeps
    distributed = True

    def __init__(self, **options):
        super().__init__(**options)
        self.steps_done = 0
        self.register_buffer("beta", torch.zeros(0))
        self.register_buffer("last_task_beta", torch.ones(0))
        self._solve_seconds = 0.0

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.last_task_beta = torch.ones(len(tasks))

    def plan_epoch(self, data, generator) -> list[Step]:
        return self.mixed_plan(data, generator, with_dev=True)

    def _features(self, module, batch: dict[str, Tensor], task: str) -> Tensor:
        parts = []
        if "hidden" in self.cfg.features:
            parts.append(module.model.features(batch).flatten(1))
        if "loss" in self.cfg.features:
            parts.append(module.loss(task, batch)[:, None])
        return torch.cat(parts, 1).float()

    def step(self, module, step: Step) -> None:
        data = step.data
        present = [t for t in self.names if t in data]
        sizes = [len(data[t]["labels"]) for t in present]
        totals = [module.step_size(t, n) for t, n in zip(present, sizes)]  # the whole step's, on several processes
        losses = torch.cat([module.loss(t, data[t]) for t in present])
        index = torch.cat([torch.full((n,), self.index(t), device=losses.device) for t, n in zip(present, sizes)])
        everyone = torch.cat([torch.full((n,), self.index(t), device=losses.device) for t, n in zip(present, totals)])
        if self.steps_done % self.cfg.update_every == 0:
            beta_all = self._solve(module, data, present)  # β of the whole step's examples, alike everywhere
        else:  # reuse: each task's examples get the task's mean β from the last solve
            beta_all = self.last_task_beta[everyone]
        beta_all = beta_all.to(losses)
        own = [module.own_shard(part, t) for t, part in zip(present, beta_all.split(totals))]
        beta = torch.cat(own)
        # Σβℓ / Σβ over the whole step; DDP averages the processes' gradients, hence the factor
        module.backward_and_step(module.world * (beta * losses).sum() / beta_all.sum())
        for t, n in zip(present, sizes):
            mask = index == self.index(t)
            module.log(f"train/loss/{t}", losses[mask].mean().detach(), on_step=True, on_epoch=True, batch_size=n)
        self.observe_weights(everyone, beta_all)
        self.steps_done += 1

    def _solve(self, module, data, present: list[str]) -> Tensor:
        start = time.perf_counter()
        # features of the current model, without dropout noise, detached, on the model's device (the solver's)
        with module.evaluating(), torch.no_grad():
            # the whole step's features, gathered from every process: the matching is a single process's
            x = torch.cat([module.gather_shards(self._features(module, data[t], t), t) for t in present])
            z = module.gather_shards(self._features(module, data[DEV], self.target), DEV)
        warm = self.beta if len(self.beta) == len(x) else None
        cfg = self.cfg
        beta = kmm_weights(x, z, cfg.B, cfg.eps, cfg.solver_steps, cfg.kernel_bandwidth, warm)
        self.beta = beta.to(self.last_task_beta)
        totals = [module.step_size(t, len(data[t]["labels"])) for t in present]
        for t, part in zip(present, beta.split(totals)):
            self.last_task_beta[self.index(t)] = part.mean()
        self._solve_seconds += time.perf_counter() - start
        return beta

    def end_epoch(self, module) -> dict[str, float]:
        # logged, not kept in the history: timings differ between otherwise identical runs
        module.log("time/kmm_seconds", self._solve_seconds, on_step=False, on_epoch=True, batch_size=1)
        self._solve_seconds = 0.0
        return {}
