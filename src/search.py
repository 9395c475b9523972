"""Weight search with its whole cost counted: trials of :func:`src.run.train` on an Optuna study.

python -m src.search task=multimnist_low_coarse search=halving
python -m src.search debug=tiny search=grid                     # the fixed-weight oracle as one command
python -m src.search task=glue_stsb model=minilm search=tpe search.max_runs=2

A trial is one point of the space (each auxiliary's weight, 0 dropping it; the batching; other options) run as
``python -m src.run method=static method.weights=... task.auxiliaries=... task.batching=...`` would run it, in
its own folder under ``<search>/trials/``. Every trial is a prefix of the full run: the learning-rate schedule
is laid over the full length (``model.lr_schedule.epochs``), a trial stopped at a rung keeps its last.ckpt, and
a trial advanced further continues from it, so the survivor is the finished model. A strategy
(:mod:`src.strategies`) decides which trials go how far; the trials count what they spent.

The search folder holds ``search.json`` (the strategy, the chosen weights and the dev score they were chosen
on, ``total_runs``: every trial's optimizer steps over those of its full run, summed, stopped trials included;
examples, passes, seconds; every trial), the Optuna study (a journal file, unless ``search.storage`` names
another), and ``search_record.json``, what defines the search: the same command finds its folder again and
continues (finished trials are kept, a stopped one continues from its checkpoint, nothing is counted twice);
another configuration in the same folder is refused. Several processes started with the same command (or on
one ``search.storage``) share the work: a trial's folder is locked while it trains, and each rung waits for the
trials the others are finishing.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from src.config import ConfigError, choice, overrides, validate
from src.data.base import DataError
from src.lock import FolderBusy, in_use, locked
from src.record import jsonable, keep_hydra_files, learned_weights, restore_hydra_files, write_atomically
from src.schema import SearchConfig
from src.strategies import (
    WEIGHT,
    Point,
    Trial,
    canonical,
    choose,
    point_key,
    sampler_and_pruner,
    weight_features,
)

log = logging.getLogger(__name__)
SEARCH_FILE, RECORD_FILE, STUDY_FILE = "search.json", "search_record.json", "study.journal"
UNRECORDED = ("storage", "poll_seconds")  # search options that cannot change what a search computes
# the search options each strategy reads: a folder's search is compared on these (and its strategy) only
_SAMPLED = ("space", "eta", "min_epochs", "points", "n_points", "seed")
READS = {
    "grid": ("space",),
    "halving": _SAMPLED,
    "hyperband": _SAMPLED,
    **{s: ("space", "eta", "min_epochs", "max_runs", "max_trials", "pruner", "seed") for s in ("tpe", "gp", "random")},
    "regmix": ("space", "proxies", "proxy_epochs", "candidates", "seed"),
    "hybrid": ("space", "source", "drop_below"),
    "conditional": ("space", "top", "eta", "min_epochs"),
}


# --- the space ------------------------------------------------------------------------------------
class Space:
    """The points a search may visit: each auxiliary's weight (0 drops it), the batching, other options."""

    def __init__(self, options: SearchConfig, auxiliaries: Sequence[str], rng_seed: int):
        self.o, self.space, self.auxiliaries, self.seed = options, options.space, list(auxiliaries), rng_seed
        self.weighted = self.space.weights is not None
        if unknown := sorted(set(self.space.per_task) - set(self.auxiliaries)):
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
                out[WEIGHT + t] = [float(w) for w in self.space.per_task.get(t, self.space.weights)]
            out["batching"] = list(self.space.batching)
        for key, values in self.space.params.items():
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
                if self.space.low is not None and t not in self.space.per_task:
                    out[WEIGHT + t] = FloatDistribution(self.space.low, self.space.high, log=True)
                    if self.space.zero:
                        out["keep/" + t] = CategoricalDistribution([True, False])
                else:
                    out[WEIGHT + t] = CategoricalDistribution(self.grids()[WEIGHT + t])
            out["batching"] = CategoricalDistribution(list(self.space.batching))
        for key, values in self.space.params.items():
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
            k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in params.items() if not k.startswith("keep/")
        }
        for k, keep in params.items():
            if k.startswith("keep/") and not keep:
                point[WEIGHT + k[len("keep/") :]] = 0.0
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


# --- trials that train ----------------------------------------------------------------------------
class LiveTrials:
    """Trials of :func:`src.run.train`, each in ``<root>/trials/<point>``, recorded in the Optuna study."""

    def __init__(self, cfg: DictConfig, options: SearchConfig, space: Space, root: Path, study: Any):
        self.cfg, self.o, self.space, self.root, self.study = cfg, options, space, root, study
        self.full_epochs = int(cfg.trainer.max_epochs)
        self.base = _base_overrides(overrides(), weighted=space.weighted)
        self.bound: dict[str, int] = {}  # point → its Optuna trial
        self.sampled: set[str] = set()  # points whose trial a sampler asked for: the strategy reports and tells

    # the Optuna record of a point
    def optuna_trial(self, key: str, point: Point) -> int:
        if key in self.bound:
            return self.bound[key]
        with _flock(self.root / ".study.lock"):
            for t in self.study.get_trials(deepcopy=False):
                if t.user_attrs.get("key") == key:
                    self.bound[key] = t._trial_id
                    return t._trial_id
            trial = self.study.ask()
            trial.set_user_attr("key", key)
            trial.set_user_attr("point", jsonable(point))
            self.bound[key] = trial._trial_id
            return trial._trial_id

    def check(self, point: Point) -> None:
        """Compose and validate the config of ``point``'s trial: a bad option fails before any training."""
        with self.composed(point, self.full_epochs, self.folder(point_key(point))) as cfg:
            validate(cfg)

    def bind(self, point: Point, trial: Any) -> None:
        """A sampler's trial for ``point`` (its values are reported there too)."""
        trial.set_user_attr("key", point_key(point))
        trial.set_user_attr("point", jsonable(point))
        self.bound[point_key(point)] = trial._trial_id
        self.sampled.add(point_key(point))

    def folder(self, key: str) -> Path:
        return self.root / "trials" / key

    def orphans(self) -> list[tuple[Any, Point]]:
        """The study's trials a dead worker left running (no live process holds their folder), with their points:
        a resumed search continues each under its own Optuna trial before it asks for new ones."""
        import optuna

        out = []
        with _flock(self.root / ".study.lock"):
            for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                key, point = t.user_attrs.get("key"), t.user_attrs.get("point")
                if key is None or point is None or in_use(self.folder(key)):
                    continue
                self.bound[key] = t._trial_id
                self.sampled.add(key)
                out.append((optuna.trial.Trial(self.study, t._trial_id), canonical(dict(point))))
        if out:
            log.info("search: continuing %d trial(s) a stopped worker left running", len(out))
        return out

    def read(self, point: Point) -> Trial:
        """The trial of ``point`` as its folder and the study record it."""
        key = point_key(point)
        trial = Trial(key, dict(point))
        results = _read_json(self.folder(key) / "results.json")
        if results:
            trial.history = list(results.get("dev_history") or [])
        failed = _read_json(self.folder(key) / "failed.json")
        if failed:
            trial.state, trial.error = "failed", failed.get("error")
        elif trial.epochs >= self.full_epochs:
            trial.state = "complete"
        elif _read_json(self.folder(key) / "stopped.json"):
            trial.state = "stopped"
        return trial

    def advance(self, points: Sequence[Point], epochs: int) -> list[Trial]:
        todo = [canonical(p) for p in points]
        while todo:
            waiting = []
            for point in todo:
                trial = self.read(point)
                if trial.state == "failed" or trial.epochs >= epochs:
                    continue
                try:
                    self._train(point, trial, epochs)
                except FolderBusy:  # another worker trains it: come back to it
                    waiting.append(point)
            if waiting:
                log.info("search: waiting for %d trial(s) other workers are training", len(waiting))
                time.sleep(self.o.poll_seconds)
            todo = waiting
        return [self.read(p) for p in points]

    def _train(self, point: Point, trial: Trial, epochs: int) -> None:
        key, folder = trial.key, self.folder(trial.key)
        trial_id = self.optuna_trial(key, point)
        with locked(folder, "a search's trial"):  # FolderBusy: another worker trains it
            trial = self.read(point)  # as the worker that held it left it
            if trial.state == "failed" or trial.epochs >= epochs:
                return
            event = "started" if trial.epochs == 0 else "promoted"
            spent = self.cost()
            log.info(
                "search: %s %s → %d/%d epochs · spent %.2f runs · worker %d",
                event,
                key,
                epochs,
                self.full_epochs,
                spent,
                os.getpid(),
            )
            self._run(point, trial, epochs, trial_id)

    def _run(self, point: Point, trial: Trial, epochs: int, trial_id: int) -> None:
        from src.preemption import Preempted
        from src.run import train

        key, folder = trial.key, self.folder(trial.key)
        checkpoints = folder / "checkpoints"
        if checkpoints.is_dir() and not (checkpoints / "last.ckpt").exists():
            # killed while its first checkpoints were written: nothing to continue from, and the search owns the
            # folder; the trial starts again (its cost is what its results.json records, so nothing counts twice)
            log.warning("search: %s holds no last.ckpt to continue from; the trial starts again", checkpoints)
            shutil.rmtree(checkpoints)
        try:
            with self.composed(point, epochs, folder) as cfg:
                results = train(cfg)
        except (FolderBusy, Preempted, KeyboardInterrupt, ConfigError, DataError):
            raise  # a setup every trial shares is broken: stop the search, naming it
        except Exception as e:  # a crashed trial is recorded and the search goes on
            error = f"{type(e).__name__}: {e}"
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(folder / "failed.json", json.dumps({"error": error, "epochs": epochs}))
            self._tell(trial_id, state=_state("FAIL"))
            log.error("search: failed %s (%s) · spent %.2f runs", key, error, self.cost())
            return
        segments = _read_json(folder / "segments.json") or {}
        if results.get("epochs") == epochs and str(epochs) not in segments:
            segments[str(epochs)] = results.get("wall_seconds") or 0.0
            write_atomically(folder / "segments.json", json.dumps(segments))
        done = self.read(point)
        if key not in self.sampled:
            with _flock(self.root / ".study.lock"):  # beside another worker that may stop the trial
                self._report(trial_id, results.get("dev_history") or [])
                if done.epochs >= self.full_epochs:
                    self._tell(trial_id, done.best)
        if done.epochs >= self.full_epochs:
            log.info("search: finished %s dev %.4f · spent %.2f runs", key, done.best, self.cost())

    def _report(self, trial_id: int, history: list[float]) -> None:
        import optuna

        frozen = self.study._storage.get_trial(trial_id)
        if frozen.state != optuna.trial.TrialState.RUNNING:
            return
        handle = optuna.trial.Trial(self.study, trial_id)
        try:
            for e in range(len(history)):
                if e + 1 not in frozen.intermediate_values:
                    handle.report(max(history[: e + 1]), e + 1)  # step = epochs trained: Optuna's resource
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker finished or stopped it meanwhile
            pass

    def _tell(self, trial_id: int, value: float | None = None, state: Any = None) -> None:
        """Tell the study a trial's outcome (by its handle: a storage may hold several studies, whose trial ids and
        numbers differ); a trial another worker already finished is left as it is."""
        import optuna

        handle = optuna.trial.Trial(self.study, trial_id)
        try:
            self.study.tell(handle, value, state=state, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def stop(self, trial: Trial) -> None:
        folder = self.folder(trial.key)
        if trial.state == "running" and not (folder / "stopped.json").exists():
            write_atomically(folder / "stopped.json", json.dumps({"epochs": trial.epochs}))
            if trial.key not in self.sampled and (trial.key in self.bound or self._find(trial.key) is not None):
                with _flock(self.root / ".study.lock"):
                    self._tell(self.optuna_trial(trial.key, trial.point), state=_state("PRUNED"))
            log.info(
                "search: stopped %s at %d epochs (dev %.4f) · spent %.2f runs",
                trial.key,
                trial.epochs,
                trial.best,
                self.cost(),
            )

    def _find(self, key: str) -> int | None:
        for t in self.study.get_trials(deepcopy=False):
            if t.user_attrs.get("key") == key:
                return t._trial_id
        return None

    def cost(self) -> float:
        return sum(c["runs"] for c in self.costs().values())

    def known(self) -> list[Trial]:
        """Every trial folder of the search with its point (the study records it), as it stands."""
        points = {t.user_attrs["key"]: t.user_attrs["point"] for t in self.study.get_trials(deepcopy=False)
                  if t.user_attrs.get("point") is not None}  # fmt: skip
        return [self.read(points[f.name]) for f in sorted((self.root / "trials").glob("*")) if f.name in points]

    def costs(self) -> dict[str, dict[str, Any]]:
        """What each trial folder's runs spent: ``runs`` (optimizer steps over its full run's), steps, examples,
        passes, seconds (every segment's), the source runs of hybrids included."""
        out = {}
        for folder in sorted((self.root / "trials").glob("*")):
            results = _read_json(folder / "results.json")
            if not results:
                continue
            epochs = len(results.get("epoch_seconds") or [])
            steps = int(results.get("optimizer_steps") or 0)
            full = steps / epochs * self.full_epochs if epochs else 0
            segments = _read_json(folder / "segments.json") or {}
            # a method's own evaluation after training (a conditional run scoring every weighting), in full runs
            evaluation = float((results.get("conditional") or {}).get("runs") or 0.0)
            out[folder.name] = {
                "runs": (steps / full if full else 0.0) + evaluation,
                "epochs": epochs,
                "optimizer_steps": steps,
                "examples": sum((results.get("examples_seen") or {}).values()),
                "passes": results.get("passes") or {},
                "wall_seconds": sum(segments.values()),
            }
        return out

    @contextmanager
    def composed(self, point: Point, epochs: int, folder: Path) -> Iterator[DictConfig]:
        """The trial's config, composed as ``python -m src.run`` composes it, with Hydra's runtime config set
        to the trial's while it runs (so its record names its own overrides and choices)."""
        from hydra.core.hydra_config import HydraConfig

        trial_overrides = [*self.base, *self.overrides(point, epochs, folder)]
        saved = HydraConfig.instance().cfg
        with _hydra_initialized():
            cfg = hydra.compose("config", overrides=trial_overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            yield cfg
        finally:
            if saved is not None:
                HydraConfig.instance().cfg = saved

    def overrides(self, point: Point, epochs: int, folder: Path) -> list[str]:
        out = []
        if self.space.weighted:
            weights = {k[len(WEIGHT) :]: float(v) for k, v in point.items() if k.startswith(WEIGHT)}
            kept = [t for t in self.space.auxiliaries if weights.get(t, 0) > 0]
            if kept:
                out += [
                    "method=static",
                    "method.weights={" + ",".join(f"{t}:{weights[t]!r}" for t in kept) + "}",
                    "task.auxiliaries=[" + ",".join(kept) + "]",
                    f"task.batching={point['batching']}",
                ]
            else:  # every auxiliary dropped: the target alone
                out.append("method=single_task")
        out += [f"{k}={_value(v)}" for k, v in point.items() if not k.startswith(WEIGHT) and k != "batching"]
        out += [
            f"trainer.max_epochs={epochs}",
            f"model.lr_schedule.epochs={self.full_epochs}",  # the full run's schedule: a trial is its prefix
            f"test={str(epochs >= self.full_epochs).lower()}",  # a trial is tested once it is a full run
            "ckpt_path=auto",
            f"paths.output_dir='{folder}'",
        ]
        if "wandb" in (self.cfg.get("logger") or {}):  # one W&B group per search, a run per trial
            out += [f"logger.wandb.group='{_group(self.cfg)}'", f"logger.wandb.name='{point_key(point)}'"]
        return out

    def run_method(self, method: str, extra: Sequence[str] = (), key: str | None = None) -> dict[str, Any] | None:
        """A full run of another method (a hybrid's source, a conditional run) in ``trials/<key>`` (by default
        ``source-<method>``); ``None`` if it failed."""
        from src.run import train

        key = key or (f"source-{method}" if not extra else f"source-{method}-probe")
        folder = self.folder(key)
        if failed := _read_json(folder / "failed.json"):
            log.error("search: the source run %s failed before: %s", key, failed.get("error"))
            return None
        log.info("search: started %s (a full run) · spent %.2f runs", key, self.cost())
        base = [o for o in self.base if not o.startswith(("method=", "method."))]
        trial_overrides = [
            *base,
            f"method={method}",
            *extra,
            f"trainer.max_epochs={self.full_epochs}",
            "ckpt_path=auto",
            f"paths.output_dir='{folder}'",
        ]
        from hydra.core.hydra_config import HydraConfig

        saved = HydraConfig.instance().cfg
        with _hydra_initialized():
            cfg = hydra.compose("config", overrides=trial_overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            while True:
                try:
                    results = train(cfg)  # finished already (another worker, an earlier process): its record
                    break
                except FolderBusy:  # another worker trains it: wait for its record
                    log.info("search: waiting for %s, which another worker trains", key)
                    time.sleep(self.o.poll_seconds)
        except (ConfigError, DataError):
            raise
        except Exception as e:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(folder / "failed.json", json.dumps({"error": f"{type(e).__name__}: {e}"}))
            log.error("search: failed %s (%s)", key, e)
            return None
        finally:
            if saved is not None:
                HydraConfig.instance().cfg = saved
        segments = _read_json(folder / "segments.json") or {}
        if str(self.full_epochs) not in segments:
            segments[str(self.full_epochs)] = results.get("wall_seconds") or 0.0
            write_atomically(folder / "segments.json", json.dumps(segments))
        return results


def _value(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)


def _group(cfg: DictConfig) -> str:
    return f"search-{choice('task')}-{cfg.search.strategy}-seed{cfg.seed}"


def _state(name: str) -> Any:
    import optuna

    return getattr(optuna.trial.TrialState, name)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_HELD: dict[tuple[int, str], int] = {}  # locks this process holds: taken again inside, re-entered, not waited on


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock between the workers of one search (creating its study, its records). Re-entrant within
    a process: flock on a second descriptor of the same file would wait on itself forever."""
    name = (os.getpid(), str(path.resolve()))  # a forked child inherits the dict, not the lock
    if _HELD.get(name):
        _HELD[name] += 1
        try:
            yield
        finally:
            _HELD[name] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        _HELD[name] = 1
        try:
            yield
        finally:
            _HELD.pop(name, None)
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def _hydra_initialized() -> Iterator[None]:
    """Compose inside a Hydra app as it is configured (its --config-dir included); elsewhere (a test, a script)
    from this repository's conf/."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    from src.config import ROOT

    with hydra.initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        yield


def _base_overrides(given: Sequence[str], weighted: bool) -> list[str]:
    """The search's command line as each trial's: its own options, the folder and Hydra's left out; a weight
    search sets the method (static) itself, so method options of another method are left out too."""
    out = []
    for o in given:
        key = o.lstrip("+~").split("=", 1)[0]
        if key == "search" or key.startswith(("search.", "search/", "hydra.", "hydra/", "paths.output_dir")):
            continue
        if key in ("ckpt_path", "test", "trainer.max_epochs"):
            continue
        if weighted and (key == "method" or key.startswith("method.")):
            continue
        out.append(o)
    return out


# --- the search -----------------------------------------------------------------------------------
def open_study(options: SearchConfig, root: Path) -> Any:
    """The search's Optuna study: a journal file in its folder, or ``search.storage`` (a database URL or a
    journal file that several workers share)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    where = options.storage
    sampler, pruner = sampler_and_pruner(options)
    try:
        with _flock(root / ".study.lock"):  # the workers of this machine one at a time
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
    import optuna

    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError:
            raise
        except Exception as e:  # sqlalchemy's errors; a bad URL fails the same way every time and is raised
            if attempt == tries - 1:
                raise
            log.info("search: the study's tables are being created by another worker (%s); trying again", e)
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def search_options(cfg: DictConfig) -> SearchConfig:
    if cfg.get("search") is None:
        raise ConfigError(
            "choose a strategy: search=grid, halving, hyperband, tpe, gp, random, regmix, hybrid, conditional or "
            "conditional_halving (conf/search/); "
            "python -m src.search search=halving"
        )
    node = cfg.search
    try:
        return OmegaConf.to_object(node) if OmegaConf.get_type(node) is SearchConfig else SearchConfig(**node)
    except ConfigError as e:
        raise ConfigError(f"search.{e}") from None


def check_record(cfg: DictConfig, options: SearchConfig, root: Path) -> None:
    """Refuse a folder made by a search with another configuration; record this one in a new folder."""
    from src.checkpoints import differences, run_record

    record = {
        "run": jsonable(run_record(cfg)),
        "search": jsonable({k: v for k, v in asdict(options).items() if k not in UNRECORDED}),
    }
    flat = {f"{k}": v for k, v in record["run"].items()} | {f"search.{k}": v for k, v in record["search"].items()}
    with _flock(root / ".study.lock"):
        saved = _read_json(root / RECORD_FILE)
        if saved is None:
            write_atomically(root / RECORD_FILE, json.dumps(record, indent=2))
            return
    before = {f"{k}": v for k, v in saved["run"].items()} | {f"search.{k}": v for k, v in saved["search"].items()}
    read = {f"search.{k}" for k in ("strategy", *READS.get(options.strategy, tuple(record["search"])))}
    before, flat = ({k: v for k, v in d.items() if not k.startswith("search.") or k in read} for d in (before, flat))
    flat = {k: v for k, v in flat.items() if k in before}  # keys the framework gained since are not compared
    if changed := differences(before, flat, where="in the folder's search"):
        raise ConfigError(
            f"{root} holds a search with another configuration; continuing it would mix the two. Changed: "
            + "; ".join(changed[:6])
            + ". Start this search in another folder (hydra.run.dir=...), or run the first one's command again."
        )


def run_search(cfg: DictConfig) -> dict[str, Any]:
    """Run (or continue) the search ``cfg`` describes in ``cfg.paths.output_dir``; returns search.json."""
    options = search_options(cfg)
    validate(cfg)  # the trials' common config: a bad key or value fails before any training
    if cfg.trainer.devices not in (1, "1") or cfg.trainer.num_nodes != 1:
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices}: a search trains its trials in its own process, one device "
            "each; start several workers with the same command instead (they share the study)"
        )
    from src.checkpoints import LastCheckpoint

    callbacks = [c.get("_target_", "") for c in (cfg.get("callbacks") or {}).values()]
    if not any(t.rsplit(".", 1)[-1] == LastCheckpoint.__name__ for t in callbacks):
        raise ConfigError(
            f"callbacks={choice('callbacks')}: a search continues each trial from its last.ckpt at the next rung; "
            "keep callbacks=default (or another with src.checkpoints.LastCheckpoint)"
        )
    root = Path(options.dir)
    root.mkdir(parents=True, exist_ok=True)
    space = Space(options, _auxiliaries(cfg), options.seed)
    gridded = options.strategy == "grid" or options.strategy in ("halving", "hyperband") and options.points == "grid"
    example = space.grid()[-1] if gridded else space.sample(1)[0]  # the space is checked, and one trial's config
    check_record(cfg, options, root)
    keep_hydra_files(Path(cfg.paths.output_dir))  # accepted: a later refused start puts these files back
    study = open_study(options, root)
    trials = LiveTrials(cfg, options, space, root, study)
    trials.check(example)
    started = time.perf_counter()
    chosen, extra = run_strategy(options, space, trials, study)
    result = summary(options, trials, chosen, extra, root, cfg)
    result["search_wall_seconds"] = time.perf_counter() - started
    write_atomically(root / SEARCH_FILE, json.dumps(result, indent=2))
    log.info(
        "search: chose %s (dev %s) · total %.2f runs · %s",
        result["chosen"].get("key") if result["chosen"] else None,
        result["chosen"].get("dev") if result["chosen"] else None,
        result["total_runs"],
        root / SEARCH_FILE,
    )
    return result


def _auxiliaries(cfg: DictConfig) -> list[str]:
    """The auxiliaries a run of ``cfg`` trains beside the target (``auto`` resolved by the task group's one rule)."""
    from hydra.utils import get_class

    task = OmegaConf.to_container(cfg.task, resolve=True)
    return get_class(task["_target_"]).resolve_auxiliaries(task)


def run_strategy(options: SearchConfig, space: Space, trials: Any, study: Any = None) -> tuple[Trial | None, dict]:
    """Run ``options.strategy`` on ``trials`` (live or replayed); returns the chosen trial and what else it found."""
    from src import strategies as s

    full = trials.full_epochs
    if options.strategy == "grid":
        return s.grid(space.grid(), trials), {}
    if options.strategy in ("halving", "hyperband"):
        if options.points == "random":
            pool = space.sample(options.n_points or 27)
        else:
            pool = space.grid()
            if options.n_points is not None and options.n_points < len(pool):
                pool = random.Random(options.seed).sample(pool, options.n_points)
        if options.strategy == "halving":
            return s.halving(pool, trials, options.eta, options.min_epochs), {}
        order = list(pool)
        random.Random(options.seed).shuffle(order)
        return s.hyperband(order, trials, options.eta, options.min_epochs or 1), {}
    if options.strategy in ("tpe", "gp", "random"):
        report = [e for e in s.rungs(64, options.eta, full) if e >= (options.min_epochs or 1)] or [full]
        on_ask = getattr(trials, "bind", None)  # a live search records the sampler's trial for its point
        chosen = s.pruned(
            study, space.distributions(), space.to_point, trials, options.max_runs, options.max_trials, report, on_ask
        )
        return chosen, {}
    if options.strategy == "regmix":
        proxy_epochs = options.proxy_epochs or max(1, full // 10)
        proxies = space.sample(options.proxies)
        candidates = space.sample(options.candidates, seed_offset=1)
        if space.space.weights:
            candidates += space.grid()
        chosen, fit = s.regmix(proxies, candidates, trials, proxy_epochs, weight_features(space.auxiliaries))
        return chosen, {"regression": jsonable(fit)}
    if options.strategy == "hybrid":
        return hybrid(options, space, trials)
    if options.strategy == "conditional":
        return conditional(options, space, trials)
    raise ConfigError(f"search.strategy={options.strategy!r}: unknown")


def hybrid(options: SearchConfig, space: Space, trials: Any) -> tuple[Trial | None, dict]:
    """A learned method's run (or a uniform run with the relatedness probe), its weights fixed, one more run."""
    if options.source == "relatedness":
        results = trials.run_method("uniform", ["callbacks=relatedness", "task.batching=mixed"])
        weights = relatedness_weights(results, space.auxiliaries) if results else None
    else:
        results = trials.run_method(options.source)
        weights = learned_weights(results) if results else None
    if weights is None:
        return None, {"source": options.source, "error": "the source run failed"}
    point: Point = {
        WEIGHT + t: (w if w >= options.drop_below else 0.0) for t, w in weights.items() if t in space.auxiliaries
    }
    point = canonical({**point, "batching": space.space.batching[0]})
    (fixed,) = trials.advance([point], trials.full_epochs)
    source = Trial(f"source-{options.source}", {"source": options.source}, list(results.get("dev_history") or []))
    source.state = "complete"
    chosen = choose([fixed, source], trials.full_epochs)
    return chosen, {"source": options.source, "learned_weights": weights, "fixed_point": point}


def conditional_overrides(space: Space) -> list[str]:
    """The conditional run's options: λ drawn from the search's own weight space, on its one batching."""
    s = space.space
    if len(s.batching) != 1 or s.params:
        raise ConfigError(
            f"search=conditional trains one conditional model over the weights: search.space.batching must hold one "
            f"batching (it holds {list(s.batching)}) and search.space.params must be empty (it holds "
            f"{sorted(s.params) or 'nothing'})"
        )
    if not space.weighted:
        raise ConfigError("search=conditional searches weights: search.space.weights=null leaves none")

    def listed(values: Sequence[float]) -> str:
        return "[" + ",".join(repr(float(v)) for v in values) + "]"

    out = [f"method.space.weights={listed(s.weights or [])}", f"task.batching={s.batching[0]}"]
    if s.per_task:
        out.append("method.space.per_task={" + ",".join(f"{t}:{listed(g)}" for t, g in s.per_task.items()) + "}")
    if s.low is not None:
        out += [f"method.space.low={s.low!r}", f"method.space.high={s.high!r}"]
    out.append(f"method.space.zero={str(s.zero).lower()}")
    return out


def conditional(options: SearchConfig, space: Space, trials: Any) -> tuple[Trial | None, dict]:
    """One conditional run (method=conditional) scores every weighting on dev; then λ* as one fixed-weight run
    (``top`` null), or its ``top`` best-ranked points through successive halving. Chosen on dev between the
    conditional model at λ* and the fixed run(s)."""
    from src import strategies as s

    results = trials.run_method("conditional", conditional_overrides(space), key="source-conditional")
    record = (results or {}).get("conditional") or {}
    if not record.get("chosen"):  # failed, unconditioned, or run without its test
        why = "the conditional run failed" if not results else "the conditional run scored no weighting"
        return None, {"source": "conditional", "error": why}
    batching = results.get("schedule") or space.space.batching[0]

    def point_of(weights: dict[str, float]) -> Point:
        return canonical({**{WEIGHT + t: float(w) for t, w in weights.items()}, "batching": batching})

    table = record.get("table") or []
    # the final order: the points rescored on the whole dev split first (by that score), then the subset's ranking
    order = sorted(table, key=lambda r: (r.get("dev") is None, -(r.get("dev") or 0.0), r["rank"]))
    if options.top is None:
        (fixed,) = trials.advance([point_of(record["chosen"])], trials.full_epochs)
        finalists = [fixed]
    else:
        pool = [point_of(r["weights"]) for r in order[: options.top]]
        best = s.halving(pool, trials, options.eta, options.min_epochs)
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


def relatedness_weights(results: dict[str, Any], auxiliaries: Sequence[str]) -> dict[str, float]:
    """The probe's look-ahead affinity of each auxiliary over the target's own: max(0, Z_aux / Z_target)."""
    affinity = results["relatedness"]["lookahead"]
    own = affinity[results["tasks"][0]]
    return {t: max(0.0, affinity[t] / own) if own > 0 else 0.0 for t in auxiliaries if t in affinity}


def summary(
    options: SearchConfig, trials: LiveTrials, chosen: Trial | None, extra: dict, root: Path, cfg: DictConfig
) -> dict[str, Any]:
    """search.json: the strategy, what it chose and on which dev score, what every trial spent."""
    costs = trials.costs()
    rows = []
    for folder in sorted((root / "trials").glob("*")):
        results = _read_json(folder / "results.json") or {}
        failed = _read_json(folder / "failed.json")
        point = _point_of(folder.name, trials)
        state = (
            "failed"
            if failed
            else (
                "complete"
                if len(results.get("dev_history") or []) >= trials.full_epochs
                else "stopped"
                if (folder / "stopped.json").exists()
                else "running"
            )
        )
        rows.append(
            {
                "key": folder.name,
                "point": point,
                "weights": results.get("weights"),
                "batching": results.get("schedule"),
                "epochs": len(results.get("dev_history") or []),
                "dev_history": results.get("dev_history") or [],
                "dev": results.get("target_dev"),
                "test": results.get("target_test"),
                "state": state,
                "error": failed.get("error") if failed else None,
                **{k: v for k, v in costs.get(folder.name, {}).items()},
            }
        )
    chosen_row = None
    if chosen is not None:
        row = next((r for r in rows if r["key"] == chosen.key), None)
        chosen_row = {
            "key": chosen.key,
            "point": chosen.point,
            "weights": row["weights"] if row else None,
            "batching": row["batching"] if row else None,
            "dev": chosen.best,
            "test": row["test"] if row else None,
            "folder": str(trials.folder(chosen.key)),
        }
    passes: dict[str, int] = {}
    for c in costs.values():
        for k, v in c["passes"].items():
            passes[k] = passes.get(k, 0) + v
    return {
        "strategy": options.strategy,
        "options": jsonable(asdict(options)),
        "target": cfg.task.target,
        "auxiliaries": trials.space.auxiliaries,
        "full_epochs": trials.full_epochs,
        "seed": cfg.seed,
        "chosen": chosen_row,
        "total_runs": sum(c["runs"] for c in costs.values()),
        "total_optimizer_steps": sum(c["optimizer_steps"] for c in costs.values()),
        "total_examples": sum(c["examples"] for c in costs.values()),
        "passes": passes,
        "wall_seconds": sum(c["wall_seconds"] for c in costs.values()),
        **extra,
        "trials": rows,
    }


def _point_of(key: str, trials: LiveTrials) -> Point | None:
    for t in trials.study.get_trials(deepcopy=False):
        if t.user_attrs.get("key") == key:
            return t.user_attrs.get("point")
    return None


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    try:
        result = run_search(cfg)
    except ConfigError:
        restore_hydra_files(Path(cfg.paths.output_dir))  # refused: Hydra's rewrite of .hydra must not stay
        raise
    return result["chosen"]["dev"] if result.get("chosen") else None


if __name__ == "__main__":
    main()
