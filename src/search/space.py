"""The points a search may visit, and the interface every space offers the strategies.

A point (:data:`src.search.strategies.Point`) holds each auxiliary's weight (``weight/<aux>``; 0 drops it), the
batching, and any other option the search varies. :class:`Space` is a live search's space, built from
``search.space`` (a :class:`src.schema.WeightSpaceConfig`); ``experiments/frontier.py`` offers the same
interface over a recorded grid. Pure: Optuna's distributions, no torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol

from src.schema import ConfigError, SearchConfig, WeightSpaceConfig
from src.search.strategies import KEEP, WEIGHT, Point, canonical, point_key


class SearchSpace(Protocol):
    """What a strategy asks of a space (:func:`src.search.registry.run_strategy`)."""

    auxiliaries: list[str]
    config: WeightSpaceConfig  # the batchings a fixed run may take, whether weights are searched
    weighted: bool

    def grid(self) -> list[Point]:
        """Every point, in the grid's product order."""

    def distributions(self) -> dict[str, Any]:
        """Optuna's distributions over the space, for a sampler's proposals."""

    def to_point(self, params: dict[str, Any]) -> Point:
        """The point of a sampler's proposal."""

    def sample(self, n: int, seed_offset: int = 0) -> list[Point]:
        """``n`` distinct points drawn at random (seeded: every worker draws the same)."""


class Space:
    """A live search's space: each auxiliary's weight (0 drops it), the batching, other options."""

    def __init__(self, options: SearchConfig, auxiliaries: Sequence[str], rng_seed: int):
        self.config, self.auxiliaries, self.seed = options.space, list(auxiliaries), rng_seed
        self.weighted = self.config.weights is not None
        if unknown := sorted(set(self.config.per_task) - set(self.auxiliaries)):
            raise ConfigError(
                f"search.space.per_task names {', '.join(unknown)}, not an auxiliary of this task "
                f"({', '.join(self.auxiliaries) or 'none'})"
            )
        if self.weighted and not self.auxiliaries:
            raise ConfigError("search.space.weights: the task has no auxiliaries to weight (task.auxiliaries=[])")

    def grids(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        if self.weighted:
            for t in self.auxiliaries:
                out[WEIGHT + t] = [float(w) for w in self.config.per_task.get(t, self.config.weights)]
            out["batching"] = list(self.config.batching)
        for key, values in self.config.params.items():
            if not isinstance(values, list | tuple):
                raise ConfigError(f"search.space.params.{key}: a grid needs a list of values, not a range")
            out[key] = list(values)
        return out

    def grid(self) -> list[Point]:
        """The grid's points, in its product order, the target alone once (whatever the batching)."""
        grids = self.grids()
        if not grids or any(not v for v in grids.values()):
            raise ConfigError("search.space: the grid is empty (a list of weights or values is empty)")
        points = [canonical(dict(zip(grids, combo))) for combo in itertools.product(*grids.values())]
        return list({point_key(p): p for p in points}.values())

    def distributions(self) -> dict[str, Any]:
        """Optuna's distributions of the space: the grids as categories, or the weight range (log) with an
        explicit ``keep/<aux>`` choice when 0 is allowed."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        if self.weighted:
            for t in self.auxiliaries:
                if self.config.low is not None and t not in self.config.per_task:
                    out[WEIGHT + t] = FloatDistribution(self.config.low, self.config.high, log=True)
                    if self.config.zero:
                        out[KEEP + t] = CategoricalDistribution([True, False])
                else:
                    out[WEIGHT + t] = CategoricalDistribution(self.grids()[WEIGHT + t])
            out["batching"] = CategoricalDistribution(list(self.config.batching))
        for key, values in self.config.params.items():
            if isinstance(values, list | tuple):
                out[key] = CategoricalDistribution(list(values))
            elif values.get("int"):
                out[key] = IntDistribution(int(values["low"]), int(values["high"]), log=bool(values.get("log")))
            else:
                out[key] = FloatDistribution(float(values["low"]), float(values["high"]), log=bool(values.get("log")))
        return out

    def to_point(self, params: dict[str, Any]) -> Point:
        # a sampled value is kept to 4 significant digits: the point's name (its folder) and the trial's options
        # then say the same, and two proposals that share a name are one trial
        point = {
            k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in params.items() if not k.startswith(KEEP)
        }
        for k, keep in params.items():
            if k.startswith(KEEP) and not keep:
                point[WEIGHT + k[len(KEEP) :]] = 0.0
        return canonical(point)

    def sample(self, n: int, seed_offset: int = 0) -> list[Point]:
        """``n`` distinct points drawn by Optuna's RandomSampler (seeded: every worker draws the same); fewer
        when the space holds fewer."""
        import optuna

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=self.seed + seed_offset))
        dists, out = self.distributions(), {}
        for _ in range(20 * n):
            point = self.to_point(study.ask(dists).params)
            out.setdefault(point_key(point), point)
            if len(out) == n:
                break
        return list(out.values())
