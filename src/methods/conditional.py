"""Loss-conditional training: one run of a model conditioned on the auxiliary weights scores every weighting.

YOTO (Dosovitskiy & Djolonga, "You Only Train Once: Loss-Conditional Training of Deep Networks", ICLR 2020)
trains one network over a family of loss weightings: each example draws its weights λ, its loss is weighted by
them, and the network is conditioned on λ (FiLM, :mod:`src.models.conditioning`). COSMOS (Ruchte & Grabocka
2021) and Pareto HyperNetworks (Navon et al., ICLR 2021) learn multitask trade-offs in one run the same way.
Here it answers the target-task question: after one run, every weighting of the search space is scored on the
target's dev split with forward passes alone, the best one (λ*) is chosen on dev, and the model at λ* is tested.

Per training example (``per: example``; ``batch``: one λ per step, for the ablation) λ is drawn from ``space``,
the same space a search searches (:class:`src.schema.WeightSpaceConfig`): each auxiliary's weight uniformly from
its grid, or log-uniformly from ``[low, high]`` with a 1/2 chance of 0 when ``zero`` (a sampled search's
``keep/`` choice). The target's loss is weighted 1, an auxiliary example's by its own λ, and every example is
conditioned on its own λ. The draws come from a generator seeded by (seed, epoch), not from torch's global one
(dropout's): a run resumed at an epoch boundary draws what an uninterrupted run draws.

Validation during training (the best checkpoint) is at ``reference`` (each auxiliary at 1 unless listed; a
weight outside the space is refused). Before the test, the tested weights score every point of the space
(the grid's product, or ``points`` sampled points of a range): all of them on ``score_examples`` dev examples
(a seeded subset), the best ``top`` on the whole dev split; λ* is the best of those, and the test runs at λ*.
The scoring's forward passes and seconds are recorded beside the table (``conditional`` in results.json), and
``target_dev`` is λ*'s whole-dev score, the score it was chosen on.

With a model that is not conditioned (``model.net.condition.enabled=false``) the method is its own control: the
same random weights, no conditioning; every point then scores alike and nothing is scored.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from src.data.schedule import Step, chunks
from src.data.tasks import headline_value
from src.methods.base import WeightingMethod
from src.methods.options import ConditionalConfig
from src.models.conditioning import CONDITION

if TYPE_CHECKING:
    from src.results import RunResults
    from src.seam import Seam

log = logging.getLogger(__name__)
KEEP_CHANCE = 0.5  # a range's chance of keeping an auxiliary (zero: true), as a sampled search's keep/ choice
BACKWARD_COST = 2.0  # a backward pass costs about two forward passes: a training example costs 3 forwards


class Conditional(WeightingMethod):
    """Per-example weights λ drawn from the search space, the trunk conditioned on them; λ* chosen on dev."""

    Config = ConditionalConfig
    batchings = ("mixed", "sampled")  # a weighted sum of the examples' losses, whichever tasks a step holds
    conditions_model = True  # model.net.condition.enabled defaults to true under this method (src.config)

    def setup(self, tasks, target) -> None:
        super().setup(tasks, target)
        self.auxiliaries = self.names[1:]
        if not self.auxiliaries:
            raise ValueError("method=conditional weights auxiliaries: the task has none (task.auxiliaries=[])")
        space = self.cfg.space
        if unknown := sorted(set(space.per_task) - set(self.auxiliaries)):
            raise ValueError(f"method.space.per_task names {', '.join(unknown)}, not an auxiliary ({self.auxiliaries})")
        if unknown := sorted(set(self.cfg.reference) - set(self.auxiliaries)):
            raise ValueError(f"method.reference names {', '.join(unknown)}, not an auxiliary ({self.auxiliaries})")
        # each auxiliary's grid, or None where it is drawn from the range
        self.grids: list[list[float] | None] = [
            [float(w) for w in space.per_task[t]]
            if t in space.per_task
            else (None if space.low is not None else [float(w) for w in space.weights])
            for t in self.auxiliaries
        ]
        self.reference = [float(self.cfg.reference.get(t, 1.0)) for t in self.auxiliaries]  # plain: from the config
        for t, w in zip(self.auxiliaries, self.reference):
            if not self.in_space(self.auxiliaries.index(t), w):
                raise ValueError(
                    f"method.reference.{t}={w:g} is outside the space λ is drawn from ({self.describe(t)}): the model "
                    f"would be validated at weights it never trained on; set method.reference.{t} to one of them"
                )
        self.table: list[dict[str, Any]] = []
        self.scoring: dict[str, Any] = {}
        self.parameters_added = 0
        self._generator: torch.Generator | None = None
        self._epoch = -1

    # --- the space ------------------------------------------------------------------------------------
    def describe(self, task: str) -> str:
        grid = self.grids[self.auxiliaries.index(task)]
        s = self.cfg.space
        return f"the grid {grid}" if grid is not None else f"[{s.low:g}, {s.high:g}]" + (" or 0" if s.zero else "")

    def in_space(self, i: int, w: float) -> bool:
        grid, s = self.grids[i], self.cfg.space
        if grid is not None:
            return any(math.isclose(w, g, rel_tol=1e-6, abs_tol=1e-12) for g in grid)
        return (w == 0 and s.zero) or s.low * (1 - 1e-6) <= w <= s.high * (1 + 1e-6)

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws of λ ``[n, K]`` from the space."""
        columns = []
        for grid in self.grids:
            if grid is not None:
                columns.append(torch.tensor(grid)[torch.randint(len(grid), (n,), generator=generator)])
                continue
            s = self.cfg.space
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            w = torch.exp(math.log(s.low) + u * (math.log(s.high) - math.log(s.low))).float()
            if s.zero:
                w = torch.where(torch.rand(n, generator=generator) < KEEP_CHANCE, w, torch.zeros_like(w))
            columns.append(w)
        return torch.stack(columns, dim=1)

    def score_points(self, seed: int) -> list[list[float]]:
        """The points scored after training: the grid's product (the auxiliaries' order), or ``points`` seeded
        draws of a range (distinct; the reference first)."""
        if all(g is not None for g in self.grids):
            return [list(p) for p in itertools.product(*self.grids)]
        drawn = self.draw(20 * self.cfg.points, torch.Generator().manual_seed(seed + 7))
        unique = {tuple(self.reference): None}
        for row in drawn.tolist():
            unique.setdefault(tuple(float(f"{w:.4g}") for w in row), None)
            if len(unique) >= self.cfg.points:
                break
        return [list(p) for p in unique]

    # --- training ------------------------------------------------------------------------------------
    def start(self, module: Seam) -> None:
        if (conditioner := module.model.conditioner) is not None:
            if conditioner.auxiliaries != self.auxiliaries:
                raise ValueError(
                    f"the model is conditioned on {conditioner.auxiliaries}, the method weights {self.auxiliaries}"
                )
            conditioner.default.copy_(torch.tensor(self.reference))  # validation: the reference weighting
        # the conditioning's own cost in parameters (its seconds: the run's against its control's)
        self.parameters_added = sum(p.numel() for p in conditioner.parameters()) if conditioner is not None else 0

    def plan_epoch(self, data, generator) -> list[Step]:
        return self.batched_plan(data, generator)

    def generator(self, module: Seam) -> torch.Generator:
        """The λ draws' generator: seeded by (seed, epoch) at the epoch's first step, so a resume replays them."""
        if self._generator is None or self._epoch != module.current_epoch:
            self._epoch = module.current_epoch
            self._generator = torch.Generator().manual_seed(module.seed * 1_000_003 + module.current_epoch + 7_919)
        return self._generator

    def step(self, module: Seam, step: Step) -> None:
        generator = self.generator(module)
        shared = self.draw(1, generator) if self.cfg.per == "batch" else None
        total, device = 0.0, module.device
        for task, batch in step.data.items():
            if task not in self.names:  # the dev batch of a plan that carries one
                continue
            n = len(batch["labels"])
            weights = (shared.expand(n, -1) if shared is not None else self.draw(n, generator)).to(device)
            losses = module.loss(task, {**batch, CONDITION: weights})
            scale = torch.ones_like(losses) if task == self.target else weights[:, self.index(task) - 1].to(losses)
            loss = module.global_mean(scale * losses, task)
            module.log(f"train/loss/{task}", losses.detach().mean(), on_step=True, on_epoch=True, batch_size=n)
            self.observe_weights(
                torch.full((1,), self.index(task), dtype=torch.long), scale.detach().float().mean().reshape(1)
            )
            total = total + loss
        module.backward_and_step(total)

    # --- scoring ---------------------------------------------------------------------------------------
    def before_test(self, module: Seam) -> None:
        """Score every point on dev with the tested weights, choose λ* and condition the test on it."""
        conditioner = module.model.conditioner
        if conditioner is None:
            self.scoring = {"conditioned": False}
            return
        started = time.perf_counter()
        dm = module.trainer.datamodule
        dev = dm.dev_set
        points = self.score_points(module.seed)
        subset = torch.randperm(len(dev), generator=torch.Generator().manual_seed(module.seed + 11))
        if self.cfg.score_examples is not None:
            subset = subset[: self.cfg.score_examples].sort().values
        else:
            subset = torch.arange(len(dev))
        ranked = self._score(module, points, subset, dm.eval_batch_size)
        order = sorted(range(len(points)), key=lambda i: (-ranked[i][0], ranked[i][1], i))
        whole = torch.arange(len(dev))
        top = order[: self.cfg.top]
        if len(subset) == len(whole):
            rescored = {i: ranked[i] for i in top}
        else:
            rescored = dict(zip(top, self._score(module, [points[i] for i in top], whole, dm.eval_batch_size)))
        best = min(top, key=lambda i: (-rescored[i][0], rescored[i][1], top.index(i)))
        self.table = [
            {
                "weights": dict(zip(self.auxiliaries, points[i])),
                "dev_subset": ranked[i][0],
                "dev_subset_loss": ranked[i][1],
                **({"dev": rescored[i][0], "dev_loss": rescored[i][1]} if i in rescored else {}),
                "rank": order.index(i),
            }
            for i in range(len(points))
        ]
        chosen = torch.tensor(points[best], dtype=conditioner.default.dtype, device=conditioner.default.device)
        conditioner.default.copy_(chosen)
        self.w = torch.cat([torch.ones(1), chosen.detach().float().cpu()]).to(self.w)
        forward_examples = len(points) * len(subset) + (0 if len(subset) == len(whole) else len(top) * len(whole))
        self.scoring = {
            "conditioned": True,
            "points": len(points),
            "subset_examples": len(subset),
            "top": len(top),
            "dev_examples": len(whole),
            "forward_examples": forward_examples,
            "seconds": time.perf_counter() - started,
            "chosen": dict(zip(self.auxiliaries, points[best])),
            "chosen_dev": rescored[best][0],
        }
        log.info(
            "conditional: scored %d points on %d dev examples (top %d on %d) in %.1f s; λ* = %s (dev %.4f)",
            len(points),
            len(subset),
            len(top),
            len(whole),
            self.scoring["seconds"],
            self.scoring["chosen"],
            self.scoring["chosen_dev"],
        )

    def _score(
        self, module: Seam, points: list[list[float]], indices: Tensor, batch_size: int
    ) -> list[tuple[float, float]]:
        """Each point's (headline dev score, mean dev loss) on the dev examples ``indices``."""
        dev, spec, device = module.trainer.datamodule.dev_set, module.specs[self.target], module.device
        metrics = [spec.make_metrics().to(device) for _ in points]
        losses = [0.0] * len(points)
        precision = module.trainer.precision_plugin
        with torch.no_grad(), module.evaluating():
            for piece in chunks(indices, batch_size):
                batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in dev.batch(piece).items()}
                for i, point in enumerate(points):
                    weights = torch.tensor(point, device=device).expand(len(piece), -1)
                    with precision.forward_context():
                        outputs = module.model(self.target, {**batch, CONDITION: weights})
                    losses[i] += float(spec.loss(outputs.float(), batch["labels"]).sum())
                    metrics[i].update(spec.predictions(outputs.float()), batch["labels"])
        out = []
        for i in range(len(points)):
            values = {k: float(v) for k, v in metrics[i].compute().items()}
            out.append((headline_value(spec, values), losses[i] / len(indices)))
        return out

    def finish_record(self, results: RunResults) -> None:
        """results.json: ``conditional`` (the scored table, λ*, the scoring's cost); ``target_dev`` at λ*."""
        # a run without its test (test=false) scored nothing: "conditioned" still says what the model was
        scoring = {"conditioned": self.parameters_added > 0, "scored": "chosen" in self.scoring, **self.scoring}
        if scoring["scored"]:
            # in full runs: a training example costs a forward and a backward pass (about 1 + BACKWARD_COST forwards);
            # the run's examples from its record (the test's checkpoint holds only its own epoch's count)
            trained = sum(results.examples_seen.values())
            scoring["runs"] = scoring["forward_examples"] / ((1 + BACKWARD_COST) * trained) if trained else None
        scoring["conditioner_parameters"] = self.parameters_added
        results.extra["conditional"] = {**scoring, "table": self.table}
        if scoring["scored"]:
            results.target_dev = self.scoring["chosen_dev"]
            results.weights = self.weights()

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "table": self.table, "scoring": self.scoring}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.table, self.scoring = list(state.get("table", [])), dict(state.get("scoring", {}))
