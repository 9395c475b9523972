"""Each search strategy once: the options it reads, its label, its pool and rungs, and Optuna's sampler and pruner.

:func:`run_strategy` runs a strategy on any :class:`~src.search.strategies.Trials`: the live search's
(:class:`src.search.live.LiveTrials`) or a replay's (:class:`src.search.replay.Replay`, ``experiments/frontier.py``),
and both build Optuna's sampler and pruner with :func:`sampler_and_pruner`, so a replay retraces the search that ran
live. The registry is what the rest of the framework asks of a strategy: a folder's search is compared on the
options its strategy reads (:data:`STRATEGIES` ``.reads``), and reports name it by its label. Pure: no torch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from src.schema import ConfigError, SearchConfig
from src.search import strategies
from src.search.space import SearchSpace
from src.search.strategies import WEIGHT, Point, Trial, Trials, canonical, choose

Outcome = tuple[Trial | None, dict[str, Any]]  # the chosen trial, and what else the strategy found


@dataclass(frozen=True)
class Strategy:
    reads: tuple[str, ...]  # the search options it reads: a folder's search is compared on these (and its name)
    label: Callable[[dict[str, Any]], str]  # its name in reports, from its options
    run: Callable[[SearchConfig, SearchSpace, Any, Any], Outcome]  # (options, space, trials, study)


def run_strategy(options: SearchConfig, space: SearchSpace, trials: Trials, study: Any = None) -> Outcome:
    """Run ``options.strategy`` on ``trials`` (live or replayed); returns the chosen trial and what else it found."""
    if options.strategy not in STRATEGIES:
        raise ConfigError(f"search.strategy={options.strategy!r}: unknown (one of {', '.join(STRATEGIES)})")
    return STRATEGIES[options.strategy].run(options, space, trials, study)


def check(options: SearchConfig, space: SearchSpace, full_epochs: int) -> None:
    """Refuse options that could not act on this search, before anything is recorded or trained."""
    prunes = options.strategy in ("halving", "hyperband", "tpe", "gp", "random")
    prunes = prunes or options.strategy == "conditional" and options.top is not None
    if prunes and options.min_epochs is not None and options.min_epochs >= full_epochs:
        raise ConfigError(
            f"search.min_epochs={options.min_epochs} is not below the run's trainer.max_epochs={full_epochs}: no "
            f"rung could stop a trial, and search={options.strategy} would train every point to the end (a grid); "
            "lower search.min_epochs, or use search=grid"
        )
    if options.strategy == "hybrid" and len(space.config.batching) != 1:
        raise ConfigError(
            f"search=hybrid fixes the learned weights for one run on one batching: search.space.batching must hold "
            f"one (it holds {list(space.config.batching)})"
        )
    if options.strategy == "conditional":
        conditional_overrides(space)  # one batching, weights to search, no other options


def label(options: dict[str, Any]) -> str:
    """A search's name in reports: ``halving η=3``, ``tpe, ≤ 2 runs``, ``hybrid (alphavil)``."""
    strategy = STRATEGIES.get(str(options.get("strategy")))
    return strategy.label(options) if strategy else str(options.get("strategy"))


def sampler_and_pruner(options: Any) -> tuple[Any, Any]:
    """Optuna's sampler and pruner for a search's options (a :class:`src.schema.SearchConfig`): ``gp``, ``tpe`` or
    random proposals; Optuna's ``HyperbandPruner``, ``SuccessiveHalvingPruner`` or none from ``min_epochs`` (1 by
    default) at ``eta``. The live search (:func:`src.search.study.open_study`) and a replay
    (``experiments/frontier.py``) both build them here, so a replayed strategy is the one that ran live."""
    import optuna

    if options.strategy == "gp":
        sampler = optuna.samplers.GPSampler(seed=options.seed, deterministic_objective=False)
    elif options.strategy == "tpe":
        sampler = optuna.samplers.TPESampler(seed=options.seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=options.seed)
    first = options.min_epochs or 1
    if options.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=first, reduction_factor=options.eta)
    elif options.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=options.eta)
    else:
        pruner = optuna.pruners.NopPruner()
    return sampler, pruner


def report_epochs(options: SearchConfig, full: int) -> list[int]:
    """The epochs at which a sampled trial reports to the pruner: Hyperband's finest rungs from ``min_epochs``."""
    most = math.ceil(math.log(full, options.eta)) + 1 if full > 1 else 1  # as many rungs as the run can hold
    return [e for e in strategies.rungs(most, options.eta, full) if e >= (options.min_epochs or 1)] or [full]


def pool(options: SearchConfig, space: SearchSpace) -> list[Point]:
    """The points halving and Hyperband start from: the grid (or ``n_points`` of it), or ``n_points`` random."""
    if options.points == "random":
        return space.sample(options.n_points or 27)
    points = space.grid()
    if options.n_points is not None and options.n_points < len(points):
        points = random.Random(options.seed).sample(points, options.n_points)
    return points


# --- the strategies as the search runs them ---------------------------------------------------------------------
def _grid(options: SearchConfig, space: SearchSpace, trials: Trials, study: Any) -> Outcome:
    return strategies.grid(space.grid(), trials), {}


def _halving(options: SearchConfig, space: SearchSpace, trials: Trials, study: Any) -> Outcome:
    return strategies.halving(pool(options, space), trials, options.eta, options.min_epochs), {}


def _hyperband(options: SearchConfig, space: SearchSpace, trials: Trials, study: Any) -> Outcome:
    order = pool(options, space)
    random.Random(options.seed).shuffle(order)
    return strategies.hyperband(order, trials, options.eta, options.min_epochs or 1), {}


def _sampled(options: SearchConfig, space: SearchSpace, trials: Trials, study: Any) -> Outcome:
    on_ask = getattr(trials, "on_proposal", None)  # a live search records the sampler's trial for its point
    epochs = report_epochs(options, trials.full_epochs)
    return strategies.pruned(
        study, space.distributions(), space.to_point, trials, options.max_runs, options.max_trials, epochs, on_ask
    ), {}


def _regmix(options: SearchConfig, space: SearchSpace, trials: Trials, study: Any) -> Outcome:
    proxy_epochs = options.proxy_epochs or max(1, trials.full_epochs // 10)
    proxies = space.sample(options.proxies)
    candidates = space.sample(options.candidates, seed_offset=1)
    if space.config.weights:
        candidates += space.grid()
    chosen, fit = strategies.regmix(
        proxies, candidates, trials, proxy_epochs, strategies.weight_features(space.auxiliaries)
    )
    return chosen, {"regression": fit}


def _hybrid(options: SearchConfig, space: SearchSpace, trials: Any, study: Any) -> Outcome:
    """A learned method's run (or a uniform run with the relatedness probe), its weights fixed, one more run."""
    from src.record import learned_weights  # reads a results.json: the live side's record, imported when run

    if options.source == "relatedness":
        results = trials.run_method("uniform", ["callbacks=relatedness", "task.batching=mixed"])
        weights = relatedness_weights(results, space.auxiliaries) if results else None
    else:
        results = trials.run_method(options.source)
        weights = learned_weights(results) if results else None
    if weights is None:
        return None, {"source": options.source, "error": "the source run failed"}
    # rounded to 4 significant digits as every point is (Space.to_point): its folder's name and its options agree
    point: Point = {
        WEIGHT + t: (float(f"{w:.4g}") if w >= options.drop_below else 0.0)
        for t, w in weights.items()
        if t in space.auxiliaries
    }
    point = canonical({**point, "batching": space.config.batching[0]})
    (fixed,) = trials.advance([point], trials.full_epochs)
    source = Trial(f"source-{options.source}", {"source": options.source}, list(results.get("dev_history") or []))
    source.state = "complete"
    chosen = choose([fixed, source], trials.full_epochs)
    return chosen, {"source": options.source, "learned_weights": weights, "fixed_point": point}


def relatedness_weights(results: dict[str, Any], auxiliaries: Sequence[str]) -> dict[str, float]:
    """The probe's look-ahead affinity of each auxiliary over the target's own: max(0, Z_aux / Z_target)."""
    affinity = results["relatedness"]["lookahead"]
    own = affinity[results["tasks"][0]]
    return {t: max(0.0, affinity[t] / own) if own > 0 else 0.0 for t in auxiliaries if t in affinity}


def conditional_overrides(space: SearchSpace) -> list[str]:
    """The conditional run's options: λ drawn from the search's own weight space, on its one batching."""
    config = space.config
    if len(config.batching) != 1 or config.params:
        raise ConfigError(
            f"search=conditional trains one conditional model over the weights: search.space.batching must hold one "
            f"batching (it holds {list(config.batching)}) and search.space.params must be empty (it holds "
            f"{sorted(config.params) or 'nothing'})"
        )
    if not space.weighted:
        raise ConfigError("search=conditional searches weights: search.space.weights=null leaves none")

    def listed(values: Sequence[float]) -> str:
        return "[" + ",".join(repr(float(v)) for v in values) + "]"

    out = [f"method.space.weights={listed(config.weights or [])}", f"task.batching={config.batching[0]}"]
    if config.per_task:
        out.append("method.space.per_task={" + ",".join(f"{t}:{listed(g)}" for t, g in config.per_task.items()) + "}")
    if config.low is not None:
        out += [f"method.space.low={config.low!r}", f"method.space.high={config.high!r}"]
    out.append(f"method.space.zero={str(config.zero).lower()}")
    return out


def _conditional(options: SearchConfig, space: SearchSpace, trials: Any, study: Any) -> Outcome:
    """One conditional run (method=conditional) scores every weighting on dev; then λ* as one fixed-weight run
    (``top`` null), or its ``top`` best-ranked points through successive halving. Chosen on dev between the
    conditional model at λ* and the fixed run(s)."""
    results = trials.run_method("conditional", conditional_overrides(space), key="source-conditional")
    record = (results or {}).get("conditional") or {}
    if not record.get("chosen"):  # failed, unconditioned, or run without its test
        why = "the conditional run failed" if not results else "the conditional run scored no weighting"
        return None, {"source": "conditional", "error": why}
    batching = results.get("schedule") or space.config.batching[0]

    def point_of(weights: dict[str, float]) -> Point:
        return canonical({**{WEIGHT + t: float(w) for t, w in weights.items()}, "batching": batching})

    table = record.get("table") or []
    # the final order: the points rescored on the whole dev split first (by that score), then the subset's ranking
    order = sorted(table, key=lambda r: (r.get("dev") is None, -(r.get("dev") or 0.0), r["rank"]))
    if options.top is None:
        (fixed,) = trials.advance([point_of(record["chosen"])], trials.full_epochs)
        finalists = [fixed]
    else:
        best = strategies.halving(
            [point_of(r["weights"]) for r in order[: options.top]], trials, options.eta, options.min_epochs
        )
        finalists = [best] if best is not None else []
    # what the conditional run tests: the model at λ*, whose dev score is known at the end of training only
    model = Trial("source-conditional", point_of(record["chosen"]), [math.nan] * (trials.full_epochs - 1))
    model.history.append(float(record["chosen_dev"]))
    model.state = "complete"
    chosen = choose([*finalists, model], trials.full_epochs)
    return chosen, {
        "source": "conditional",
        "conditional": {k: v for k, v in record.items() if k != "table"},
        "pool": [r["weights"] for r in order[: options.top]] if options.top is not None else None,
    }


_POOLED = ("space", "eta", "min_epochs", "points", "n_points", "seed")
_SAMPLED = ("space", "eta", "min_epochs", "max_runs", "max_trials", "pruner", "seed")
STRATEGIES: dict[str, Strategy] = {
    "grid": Strategy(("space",), lambda o: "grid", _grid),
    "halving": Strategy(_POOLED, lambda o: f"halving η={o.get('eta')}", _halving),
    "hyperband": Strategy(_POOLED, lambda o: f"hyperband η={o.get('eta')}", _hyperband),
    **{
        name: Strategy(_SAMPLED, lambda o: f"{o.get('strategy')}, ≤ {o.get('max_runs')} runs", _sampled)
        for name in ("tpe", "gp", "random")
    },
    "regmix": Strategy(("space", "proxies", "proxy_epochs", "candidates", "seed"), lambda o: "regmix", _regmix),
    "hybrid": Strategy(("space", "source", "drop_below"), lambda o: f"hybrid ({o.get('source')})", _hybrid),
    "conditional": Strategy(
        ("space", "top", "eta", "min_epochs"),
        lambda o: "conditional, λ* fixed" if o.get("top") is None else f"conditional + halving on its top {o['top']}",
        _conditional,
    ),
}
