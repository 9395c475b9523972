"""A strategy replayed on recorded runs: each trial the prefix of a recorded dev history (a grid's runs), so that
``experiments/frontier.py`` retraces what a live search would have chosen and spent, with the strategies' own code
(:func:`src.search.registry.run_strategy`)."""

from __future__ import annotations

from collections.abc import Sequence

from src.search.strategies import Point, Trial, point_key


class Replay:
    """Trials read from recorded dev histories (a grid's runs): advancing a point to ``e`` epochs reveals the first
    ``e`` scores of its recorded run. Points without a record are failed trials that cost nothing."""

    def __init__(self, histories: dict[str, list[float]], full_epochs: int):
        self.histories, self.full_epochs = histories, full_epochs
        self.trials: dict[str, Trial] = {}

    def advance(self, points: Sequence[Point], epochs: int) -> list[Trial]:
        out = []
        for point in points:
            key = point_key(point)
            trial = self.trials.setdefault(key, Trial(key, dict(point)))
            if key not in self.histories:
                trial.state, trial.error = "failed", "no recorded run at this point"
            elif trial.epochs < epochs:
                trial.history = list(self.histories[key][:epochs])
                trial.state = "complete" if trial.epochs >= self.full_epochs else "running"
            out.append(trial)
        return out

    def stop(self, trial: Trial) -> None:
        if trial.state == "running":
            trial.state = "stopped"

    def cost(self) -> float:
        return sum(t.epochs for t in self.trials.values()) / self.full_epochs

    def all_trials(self) -> list[Trial]:
        return list(self.trials.values())
