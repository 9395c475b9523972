"""Search strategies over fixed task weightings, written against one small interface so that the same code runs a
search live (each trial a run of :func:`src.train.train`, :mod:`src.search.live`) and replays it on recorded runs
(each trial the prefix of a recorded dev history, :class:`src.search.replay.Replay`). Nothing here imports torch or
Lightning: the frontier's replays import this side alone.

Every trial is a prefix of the full run: advancing a trial to ``e`` epochs continues it from where it stopped, and
asking for epochs it already trained costs nothing. A strategy therefore only says which points to advance how
far; what that costs is counted by the trials, in units of one full run (a trial that trained ``e`` of ``E``
epochs costs ``e / E``). The choice is always made on the target's dev score: the best dev score of a trial
trained to the full length (its best epoch's, as a run tests it).

Strategies (``search.strategy``):

- ``grid``: every point to the full length (the oracle as one command).
- ``halving``: synchronous successive halving (Jamieson & Talwalkar 2016): every point to the first rung, the best
  ``1/eta`` (by best dev so far) on to the next, the survivor to the full length.
- ``hyperband``: Hyperband's brackets (Li et al. 2018) of successive halving, from ``E / eta^s`` epochs down to
  the full length, over one shuffled pool of points; a point in several brackets continues its own run.
- ``tpe`` / ``gp`` / ``random``: an Optuna sampler proposes points one at a time and Optuna's pruner
  (``HyperbandPruner`` or ``SuccessiveHalvingPruner``) stops the weak ones at its rungs, until ``max_runs`` of
  compute is spent.
- ``regmix``: RegMix's proxy regression (Liu et al. 2024): ``proxies`` random points trained for
  ``proxy_epochs``, a regression of their dev score on the weights, one full run at the predicted best.
- ``hybrid``: a learned method's run (or the relatedness probe's) turned into fixed weights for one more run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Point = dict[str, Any]  # "weight/<aux>": float (0: the auxiliary is dropped), "batching": str, other keys: values
WEIGHT = "weight/"
KEEP = "keep/"


def point_key(point: Point) -> str:
    """A name for ``point``, usable as a folder name: ``left_coarse-0.3_right-0_sampled``. All weights 0 is the
    target alone, whatever the batching (``single``)."""
    weights = {k[len(WEIGHT) :]: v for k, v in sorted(point.items()) if k.startswith(WEIGHT)}
    others = {k: v for k, v in sorted(point.items()) if not k.startswith(WEIGHT) and k != "batching"}
    alone = weights and not any(weights.values())
    parts = [f"{t}-{_number(w)}" for t, w in weights.items()]
    parts += [] if alone else [str(point.get("batching", ""))] if "batching" in point else []
    parts += [f"{k.replace('/', '.')}-{_number(v)}" for k, v in others.items()]
    return "single" if alone and not others else "_".join(p for p in parts if p)


def _number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def canonical(point: Point) -> Point:
    """``point`` with the batching left out when every weight is 0 (the target alone: no other task to batch)."""
    weights = [v for k, v in point.items() if k.startswith(WEIGHT)]
    if weights and not any(weights):
        return {k: v for k, v in point.items() if k != "batching"}
    return dict(point)


@dataclass
class Trial:
    """A point and how far it trained: ``history`` is its target dev score after each epoch so far."""

    key: str
    point: Point
    history: list[float] = field(default_factory=list)
    state: str = "running"  # running | stopped | complete | failed
    error: str | None = None

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def best(self) -> float:
        """The best dev score so far (what a run tests); -inf before any epoch or when every score is NaN."""
        return self.best_within(len(self.history))

    def best_within(self, epochs: int) -> float:
        """The best dev score of the first ``epochs`` epochs: what a rung at ``epochs`` compares, whatever the
        trial trained since (a point another bracket took further)."""
        finite = [s for s in self.history[:epochs] if not math.isnan(s)]
        return max(finite) if finite else -math.inf


class Trials(Protocol):
    """What a strategy runs on: live runs (:class:`src.search.live.LiveTrials`) or recorded ones
    (:class:`src.search.replay.Replay`)."""

    full_epochs: int

    def advance(self, points: Sequence[Point], epochs: int) -> list[Trial]:
        """Bring every point to ``epochs`` (continuing what it trained; a point already there costs nothing)."""

    def stop(self, trial: Trial) -> None:
        """The strategy will not advance ``trial`` again."""

    def cost(self) -> float:
        """Compute spent so far, in full runs."""

    def all_trials(self) -> list[Trial]:
        """Every trial of the search so far, whoever trained it (several workers, an earlier process)."""


def ranked(trials: Sequence[Trial], epochs: int | None = None) -> list[Trial]:
    """Best dev score (within the first ``epochs``) first; ties by the order given (the same on every worker)."""
    score = (lambda t: t.best) if epochs is None else (lambda t: t.best_within(epochs))
    return [t for _, t in sorted(enumerate(trials), key=lambda it: (-score(it[1]), it[0]))]


def choose(trials: Sequence[Trial], full_epochs: int) -> Trial | None:
    """The trial trained to the full length with the best dev score."""
    complete = [t for t in trials if t.epochs >= full_epochs and t.state != "failed"]
    return ranked(complete)[0] if complete else None


# --- the strategies ------------------------------------------------------------------------------
def grid(pool: Sequence[Point], trials: Trials) -> Trial | None:
    return choose(trials.advance(pool, trials.full_epochs), trials.full_epochs)


def rungs(count: int, eta: int, full: int) -> list[int]:
    """Epochs at each of ``count`` rungs: ``full / eta^k`` for k = count-1 … 0, at least one epoch each."""
    return sorted({max(1, round(full / eta ** (count - 1 - k))) for k in range(count)})


def halving(
    pool: Sequence[Point], trials: Trials, eta: int = 3, min_epochs: int | None = None, count: int | None = None
) -> Trial | None:
    """Synchronous successive halving: all of ``pool`` to the first rung, the best ``ceil(n/eta)`` by best dev so
    far to the next, …, the last to the full length. One rung per ``eta``-fold cut of the points, as few as keep
    the first rung at ``min_epochs`` or more; ``count`` fixes the number of rungs (Hyperband's brackets)."""
    full = trials.full_epochs
    if count is None:
        count = math.ceil(math.log(len(pool), eta) - 1e-9) + 1 if len(pool) > 1 else 1
        if min_epochs is not None:
            count = max(1, min(count, math.floor(math.log(full / min_epochs, eta) + 1e-9) + 1))
    alive = list(pool)
    survivors: list[Trial] = []
    steps = rungs(count, eta, full)
    for i, epochs in enumerate(steps):
        survivors = [t for t in trials.advance(alive, epochs) if t.state != "failed"]
        if i == len(steps) - 1:
            break
        keep = max(1, math.ceil(len(survivors) / eta))
        order = ranked(survivors, epochs)
        for t in order[keep:]:
            trials.stop(t)
        alive = [t.point for t in order[:keep]]
    return choose(survivors, full)


def hyperband(pool: Sequence[Point], trials: Trials, eta: int = 3, min_epochs: int = 1) -> Trial | None:
    """Hyperband's brackets s = s_max … 0 of successive halving: ``ceil((s_max+1)/(s+1) · eta^s)`` points from
    ``E / eta^s`` epochs, drawn in turn from ``pool`` (cycling: a point drawn again continues its own run)."""
    full = trials.full_epochs
    s_max = max(0, math.floor(math.log(full / min_epochs, eta) + 1e-9))
    cycle = itertools.cycle(range(len(pool)))
    finished: list[Trial] = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * eta**s)
        chosen = list(dict.fromkeys(next(cycle) for _ in range(min(n, len(pool)))))
        best = halving([pool[i] for i in chosen], trials, eta, count=s + 1)
        if best is not None:
            finished.append(best)
    return choose(finished, full)


def regmix(
    proxies: Sequence[Point],
    candidates: Sequence[Point],
    trials: Trials,
    proxy_epochs: int,
    features: Callable[[Point], np.ndarray],
    ridge: float = 1e-3,
) -> tuple[Trial | None, dict[str, Any]]:
    """RegMix: every proxy point for ``proxy_epochs``, a ridge regression of its best dev score on ``features``,
    and one full run at the candidate with the best prediction. Returns the chosen trial and the fit."""
    measured = [t for t in trials.advance(proxies, proxy_epochs) if t.state != "failed" and t.best > -math.inf]
    for t in measured:
        trials.stop(t)
    if len(measured) < 2:
        return None, {"error": "fewer than two proxy runs finished"}
    x = np.stack([features(t.point) for t in measured])
    y = np.array([t.best for t in measured])
    mean, scale = x.mean(0), x.std(0) + 1e-12
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    coef = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ y)

    def predict(p: Point) -> float:
        return float(np.hstack([1.0, (features(p) - mean) / scale]) @ coef)

    scores = [predict(p) for p in candidates]
    best = candidates[int(np.argmax(scores))]
    fit = {
        "proxies": len(measured),
        "r2": float(1 - ((z @ coef - y) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)),
        "predicted": max(scores),
        "point": best,
    }
    return choose(trials.advance([best], trials.full_epochs), trials.full_epochs), fit


def weight_features(names: Sequence[str]) -> Callable[[Point], np.ndarray]:
    """RegMix's features of a point: each auxiliary's weight, its square, whether it is used, and the batching."""

    def features(point: Point) -> np.ndarray:
        w = np.array([float(point.get(WEIGHT + t, 0.0)) for t in names])
        sampled = [1.0 if point.get("batching") == "sampled" else 0.0]
        return np.concatenate([w, w**2, (w > 0).astype(float), sampled])

    return features


DUPLICATES = 20  # proposals in a row of points already decided: the sampler has nothing new to offer


def pruned(
    study: Any,
    distributions: dict[str, Any],
    to_point: Callable[[dict[str, Any]], Point],
    trials: Trials,
    max_runs: float,
    max_trials: int,
    report_epochs: Sequence[int],
    on_ask: Callable[[Point, Any], None] | None = None,
) -> Trial | None:
    """An Optuna sampler proposes, Optuna's pruner stops: each trial advances rung by rung (``report_epochs``),
    reporting its dev scores so far, until the pruner stops it or it reaches the full length. Proposals stop when
    ``max_runs`` of compute is spent or the search holds ``max_trials`` points. ``on_ask`` sees each proposal's
    point and trial.

    Started again, the search ends where an uninterrupted one ends: a trial a dead worker left running
    (``trials.orphans()``, live searches) is continued first under its own Optuna trial; a point proposed again
    (a seeded sampler replays its first proposals) is told its known outcome and counts once, as do the study's
    trials of one point; after :data:`DUPLICATES` such proposals in a row the space is spent."""
    import optuna

    full = trials.full_epochs

    def run(ask: Any, point: Point) -> None:
        trial: Trial | None = None
        frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == ask.number), None)
        reported = len(frozen.intermediate_values) if frozen is not None else 0  # an orphan's reports so far
        for epochs in report_epochs:
            (trial,) = trials.advance([point], epochs)
            if trial.state == "failed":
                break
            for e in range(reported, trial.epochs):  # step = epochs trained, as Optuna's pruners count resources
                ask.report(max(trial.history[: e + 1]), e + 1)
            reported = max(reported, trial.epochs)
            if trial.epochs < full and ask.should_prune():
                break
        assert trial is not None
        tell(ask, trial)

    def tell(ask: Any, trial: Trial) -> None:
        if trial.state == "failed":
            study.tell(ask, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        elif trial.epochs >= full:
            study.tell(ask, trial.best, skip_if_finished=True)
        else:
            trials.stop(trial)
            study.tell(ask, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)

    for ask, point in getattr(trials, "orphans", list)():
        run(ask, point)
    repeated = 0
    while len({t.key for t in trials.all_trials()}) < max_trials:  # every worker's points, an earlier process's
        if trials.cost() >= max_runs or repeated >= DUPLICATES:
            break
        ask = study.ask(distributions)
        point = canonical(to_point(ask.params))
        known = next((t for t in trials.all_trials() if t.key == point_key(point)), None)
        decided = known is not None and known.state in ("complete", "stopped", "failed")
        repeated = repeated + 1 if decided else 0  # decided already: its trial costs nothing, and counts once
        if on_ask is not None:
            on_ask(point, ask)
        run(ask, point)
    return choose(trials.all_trials(), full)  # among every trial of the search, not this process's alone
