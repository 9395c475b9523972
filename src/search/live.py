"""Trials that train: each point a run of :func:`src.train.train` in its own folder, recorded in the Optuna study.

A strategy asks :class:`LiveTrials` to advance points (the :class:`~src.search.strategies.Trials` interface); each
advance continues the point's run from its last.ckpt to the rung's epochs, under the folder's lock, so several
workers on one search each train a segment once. An error every trial would share (a bad option, a missing or
corrupt data file) stops the search and is not recorded as the trial's failure (:func:`shared_error`); any other
crash is the trial's own: recorded, and the search goes on.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig

from src.config import validate
from src.data.base import DataError
from src.lock import FolderBusy, file_lock, locked
from src.schema import ConfigError, SearchConfig
from src.search.compose import base_overrides, composed, point_overrides, run_overrides, wandb_overrides
from src.search.folder import TrialFolder
from src.search.space import Space
from src.search.strategies import Point, Trial, canonical, point_key
from src.search.study import Study
from src.train import train

log = logging.getLogger(__name__)


def shared_error(e: BaseException) -> BaseException | None:
    """The error every trial of the search would meet, if ``e`` is or wraps one (Hydra wraps a data module's
    :class:`DataError` in its ``InstantiationException``): a bad option, a config that cannot be composed (an option
    of another search's typo, ``search.source=bogus``), a missing or corrupt data file."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConfigError | DataError | ConfigCompositionException | MissingConfigException):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


class LiveTrials:
    """Trials of :func:`src.train.train`, each in ``<root>/trials/<point>``, recorded in the Optuna study."""

    def __init__(self, cfg: DictConfig, options: SearchConfig, space: Space, root: Path, study: optuna.Study):
        self.cfg, self.options, self.space, self.root = cfg, options, space, root
        self.study = Study(study, root)
        self.full_epochs = int(cfg.trainer.max_epochs)
        command = shlex.join(["python", "-m", "src.search", *cfg.launch.overrides])
        self.base = base_overrides(cfg.launch.overrides, weighted=space.weighted)
        self.group = (
            f"search-{cfg.launch.choices.get('task')}-{options.strategy}-seed{cfg.seed}"  # one W&B group per search
        )
        # what a trial stopped by SIGTERM or Ctrl-C says: the search continues it, and counts its time
        self.resume = f"Continue the search (it continues this trial and counts its time) with `{command}`"
        self.sampled: set[str] = set()  # points whose trial a sampler asked for: the strategy reports and tells

    def folder(self, key: str) -> TrialFolder:
        return TrialFolder(self.root, key)

    def trial_overrides(self, point: Point, epochs: int) -> list[str]:
        key = point_key(point)
        return [
            *self.base,
            *point_overrides(point, self.space.auxiliaries, self.space.weighted),
            *run_overrides(epochs, self.full_epochs, self.folder(key).path),
            *wandb_overrides(self.cfg, self.group, key),
        ]

    def check(self, point: Point) -> None:
        """Compose and validate the config of ``point``'s trial: a bad option fails before any training."""
        validate(composed(self.trial_overrides(point, self.full_epochs)))

    # --- the Trials interface
    def read(self, point: Point) -> Trial:
        """The trial of ``point`` as its folder records it."""
        return self.folder(point_key(point)).trial(point, self.full_epochs)

    def advance(self, points: Sequence[Point], epochs: int) -> list[Trial]:
        todo = [canonical(p) for p in points]
        while todo:
            waiting = []
            for point in todo:
                trial = self.read(point)
                if trial.state == "failed" or trial.epochs >= epochs:
                    continue
                try:
                    self._train(point, epochs)
                except FolderBusy:  # another worker trains it: come back to it
                    waiting.append(point)
            if waiting:
                log.info("search: waiting for %d trial(s) other workers are training", len(waiting))
                time.sleep(self.options.poll_seconds)
            todo = waiting
        return [self.read(p) for p in points]

    def stop(self, trial: Trial) -> None:
        if trial.state != "running" or not self.folder(trial.key).stop(trial.epochs):
            return
        if trial.key not in self.sampled and self.study.find(trial.key) is not None:
            with file_lock(self.study.lock):
                self.study.tell(self.study.trial_of(trial.key, trial.point), state="PRUNED")
        log.info("search: stopped %s at %d epochs (dev %.4f) · spent %.2f runs", trial.key, trial.epochs, trial.best,
                 self.cost())  # fmt: skip

    def cost(self) -> float:
        return sum(c["runs"] for c in self.costs().values())

    def all_trials(self) -> list[Trial]:
        """Every trial folder of the search with its point (the study records it), as it stands."""
        points = self.study.points()
        return [f.trial(points[f.key], self.full_epochs) for f in TrialFolder.every(self.root) if f.key in points]

    def costs(self) -> dict[str, dict[str, Any]]:
        """What each trial folder's runs spent (:meth:`TrialFolder.cost`), the source runs of hybrids included."""
        return {f.key: c for f in TrialFolder.every(self.root) if (c := f.cost(self.full_epochs)) is not None}

    # --- what a sampler's search adds
    def on_proposal(self, point: Point, trial: optuna.Trial) -> None:
        """A sampler's trial for ``point`` (its values are reported there too)."""
        self.study.attach(point_key(point), point, trial)
        self.sampled.add(point_key(point))

    def orphans(self) -> list[tuple[optuna.Trial, Point]]:
        """The study's trials a dead worker left running, with their points: a resumed search continues each under
        its own Optuna trial before it asks for new ones."""
        out = self.study.orphans(lambda key: self.folder(key).path)
        self.sampled.update(point_key(p) for _, p in out)
        if out:
            log.info("search: continuing %d trial(s) a stopped worker left running", len(out))
        return out

    # --- training
    def _train(self, point: Point, epochs: int) -> None:
        key = point_key(point)
        number = self.study.trial_of(key, point)
        folder = self.folder(key)
        with locked(folder.path, "a search's trial"):  # FolderBusy: another worker trains it
            trial = self.read(point)  # as the worker that held it left it
            if trial.state == "failed" or trial.epochs >= epochs:
                return
            log.info("search: %s %s → %d/%d epochs · spent %.2f runs · worker %d",
                     "started" if trial.epochs == 0 else "promoted", key, epochs, self.full_epochs, self.cost(),
                     os.getpid())  # fmt: skip
            folder.start_clean()
            results = self._fit(self.trial_overrides(point, epochs), key, epochs)
            if results is None:
                self.study.tell(number, state="FAIL")
                return
            folder.add_segment(results, epochs)
            done = self.read(point)
            if key not in self.sampled:
                with file_lock(self.study.lock):  # beside another worker that may stop the trial
                    self.study.report(number, results.get("dev_history") or [])
                    if done.epochs >= self.full_epochs:
                        self.study.tell(number, done.best)
            if done.epochs >= self.full_epochs:
                log.info("search: finished %s dev %.4f · spent %.2f runs", key, done.best, self.cost())

    def _fit(self, trial_overrides: list[str], key: str, epochs: int) -> dict[str, Any] | None:
        """Train one segment to ``epochs``; ``None`` if the run crashed (recorded in its folder). An error every
        trial shares is raised; a stop by SIGTERM or Ctrl-C names the search's command, not the trial's."""
        try:
            return train(composed(trial_overrides))
        except (FolderBusy, KeyboardInterrupt):
            raise
        except Exception as e:
            if (shared := shared_error(e)) is not None:
                raise shared from None  # a setup every trial shares is broken: stop the search, naming it
            error = f"{type(e).__name__}: {e}"
            self.folder(key).fail(error, epochs)
            log.error("search: failed %s (%s) · spent %.2f runs", key, error, self.cost())
            return None

    def run_method(self, method: str, extra: Sequence[str] = (), key: str | None = None) -> dict[str, Any] | None:
        """A full run of another method (a hybrid's source, a conditional run) in ``trials/<key>`` (by default
        ``source-<method>``); ``None`` if it failed."""
        key = key or (f"source-{method}" if not extra else f"source-{method}-probe")
        folder = self.folder(key)
        if failed := folder.failure():
            log.error("search: the source run %s failed before: %s", key, failed.get("error"))
            return None
        log.info("search: started %s (a full run) · spent %.2f runs", key, self.cost())
        base = [o for o in self.base if not o.startswith(("method=", "method."))]
        run = [*base, f"method={method}", *extra, f"trainer.max_epochs={self.full_epochs}", "ckpt_path=auto",
               f"paths.output_dir='{folder.path}'"]  # fmt: skip
        while True:
            try:
                results = self._fit(run, key, self.full_epochs)  # finished already: its record
                break
            except FolderBusy:  # another worker trains it: wait for its record
                log.info("search: waiting for %s, which another worker trains", key)
                time.sleep(self.options.poll_seconds)
        if results is not None:
            folder.add_segment(results, self.full_epochs)
        return results
