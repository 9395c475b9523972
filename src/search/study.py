"""The live search's Optuna study, and every use of Optuna's storage the search makes, in one adapter.

The study holds one Optuna trial per point (its ``key`` and ``point`` user attributes), whichever worker asked for
it; a trial's scores are reported by epochs trained (Optuna's resource), its outcome told once. Trials are named
by their number everywhere (Optuna's public handle: ``study.tell`` and ``study.get_trials`` take it); the one
private call left is :meth:`Study.handle`, a ``Trial`` object for a trial another process asked for, which
Optuna's public API offers only to the process that asked.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import optuna

from src.lock import file_lock, in_use
from src.record import jsonable
from src.schema import ConfigError, SearchConfig
from src.search.registry import sampler_and_pruner
from src.search.strategies import Point, canonical

log = logging.getLogger(__name__)
STUDY_FILE, STUDY_LOCK = "study.journal", ".study.lock"


def open_study(options: SearchConfig, root: Path) -> optuna.Study:
    """The search's Optuna study: a journal file in its folder, or ``search.storage`` (a database URL or a
    journal file that several workers share)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    where = options.storage
    sampler, pruner = sampler_and_pruner(options)
    try:
        with file_lock(root / STUDY_LOCK):  # the workers of this machine one at a time
            if where and "://" in where:
                storage: Any = _database(where)
            else:
                path = Path(where) if where else root / STUDY_FILE
                path.parent.mkdir(parents=True, exist_ok=True)
                storage = JournalStorage(JournalFileBackend(str(path)))
            return optuna.create_study(
                storage=storage,
                study_name=options.study_name,
                direction="maximize",
                load_if_exists=True,
                sampler=sampler,
                pruner=pruner,
            )
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"search.storage={where!r}: the study cannot be opened ({type(e).__name__}: {e})") from None


def _database(url: str, tries: int = 5) -> Any:
    """Optuna's storage on a database. Workers that start together on several machines create its tables at once,
    and all but one fail on the tables another just made (an IntegrityError on PostgreSQL): tried again, after a
    pause that grows, the tables are there."""
    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError:
            raise
        except Exception as e:  # sqlalchemy's errors; a bad URL fails the same way every try, raised after the last
            if attempt == tries - 1:
                raise
            log.info("search: the study's tables are being created by another worker (%s); trying again", e)
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


class Study:
    """The search's study as the live trials use it: a point's Optuna trial (found or asked for), its reports and
    its outcome, the trials a dead worker left running. Changes are made under the search's study lock."""

    def __init__(self, study: optuna.Study, root: Path):
        self.study, self.lock = study, root / STUDY_LOCK
        self.numbers: dict[str, int] = {}  # point key → its Optuna trial's number

    def startup_trials(self) -> int | None:
        """How many of the sampler's first proposals are random (TPE's and GP's ``n_startup_trials``; private)."""
        return getattr(self.study.sampler, "_n_startup_trials", None)

    def points(self) -> dict[str, Point]:
        """Every point the study holds, by key."""
        return {
            t.user_attrs["key"]: t.user_attrs["point"]
            for t in self.study.get_trials(deepcopy=False)
            if t.user_attrs.get("key") is not None and t.user_attrs.get("point") is not None
        }

    def find(self, key: str) -> int | None:
        """The number of ``key``'s Optuna trial, if the study holds one."""
        if key not in self.numbers:
            for t in self.study.get_trials(deepcopy=False):
                if t.user_attrs.get("key") == key:
                    self.numbers[key] = t.number
                    break
        return self.numbers.get(key)

    def trial_of(self, key: str, point: Point) -> int:
        """The number of ``key``'s Optuna trial, asked for if the study holds none."""
        with file_lock(self.lock):
            if (number := self.find(key)) is not None:
                return number
            trial = self.study.ask()
            self.attach(key, point, trial)
            return trial.number

    def attach(self, key: str, point: Point, trial: optuna.Trial) -> None:
        """``trial`` (a sampler's proposal, or one asked for here) is ``point``'s."""
        trial.set_user_attr("key", key)
        trial.set_user_attr("point", jsonable(point))
        self.numbers[key] = trial.number

    def orphans(self, in_use_by: Any) -> list[tuple[optuna.Trial, Point]]:
        """The study's trials a dead worker left running (no live process holds the folder ``in_use_by(key)``
        names), with their points and a handle to report on."""
        out = []
        with file_lock(self.lock):
            for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                key, point = t.user_attrs.get("key"), t.user_attrs.get("point")
                if key is None or point is None or in_use(in_use_by(key)):
                    continue
                self.numbers[key] = t.number
                out.append((self.handle(t.number), canonical(dict(point))))
        return out

    def handle(self, number: int) -> optuna.Trial:
        """A ``Trial`` to report on, for a trial this process may not have asked for (Optuna's constructor takes the
        storage's trial id: the one use of its private API)."""
        return optuna.trial.Trial(self.study, self._frozen(number)._trial_id)

    def _frozen(self, number: int) -> optuna.trial.FrozenTrial:
        return next(t for t in self.study.get_trials(deepcopy=False) if t.number == number)

    def report(self, number: int, history: list[float]) -> None:
        """Report the best dev score so far after each epoch trained (step = epochs: Optuna's resource), from the
        first epoch not yet reported; a trial another worker finished or stopped meanwhile is left as it is."""
        frozen = self._frozen(number)
        if frozen.state != optuna.trial.TrialState.RUNNING:
            return
        handle = self.handle(number)
        try:
            for e in range(len(history)):
                if e + 1 not in frozen.intermediate_values:
                    handle.report(max(history[: e + 1]), e + 1)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def tell(self, number: int, value: float | None = None, state: str | None = None) -> None:
        """Tell the study a trial's outcome (``state``: ``FAIL`` or ``PRUNED``; a value: complete); a trial another
        worker already finished is left as it is."""
        try:
            self.study.tell(
                number, value, state=getattr(optuna.trial.TrialState, state) if state else None, skip_if_finished=True
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
