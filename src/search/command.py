"""``python -m src.search``: a search's options checked, its folder claimed, its strategy run, search.json written.

The search folder holds ``search.json`` (the strategy, the chosen weights and the dev score they were chosen on,
``total_runs``: every trial's optimizer steps over those of its full run, summed, stopped trials included;
examples, passes, seconds; every trial), the Optuna study (a journal file, unless ``search.storage`` names
another), and ``search_record.json``, what defines the search: the same command finds its folder again and
continues (finished trials are kept, a stopped one continues from its checkpoint, nothing is counted twice);
another configuration in the same folder is refused.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from src.checkpoints import LastCheckpoint, differences, run_record
from src.config import validate
from src.files import write_atomically
from src.lock import file_lock
from src.preemption import between_runs
from src.record import jsonable, keep_hydra_files
from src.schema import ConfigError, SearchConfig
from src.search.folder import TrialFolder, read_json
from src.search.live import LiveTrials
from src.search.registry import STRATEGIES, check, run_strategy
from src.search.space import Space
from src.search.strategies import Trial
from src.search.study import STUDY_FILE, STUDY_LOCK, open_study

log = logging.getLogger(__name__)
SEARCH_FILE, RECORD_FILE = "search.json", "search_record.json"
UNRECORDED = ("storage", "poll_seconds")  # search options that cannot change what a search computes


def search_options(cfg: DictConfig) -> SearchConfig:
    if cfg.get("search") is None:
        raise ConfigError(
            f"choose a strategy: search={', '.join(STRATEGIES)} or conditional_halving (conf/search/); "
            "python -m src.search search=halving"
        )
    node = cfg.search
    try:
        return OmegaConf.to_object(node) if OmegaConf.get_type(node) is SearchConfig else SearchConfig(**node)
    except ConfigError as e:
        raise ConfigError(f"search.{e}") from None


def auxiliaries(cfg: DictConfig) -> list[str]:
    """The auxiliaries a run of ``cfg`` trains beside the target (``auto`` resolved by the task group's one rule)."""
    task = OmegaConf.to_container(cfg.task, resolve=True)
    return get_class(task["_target_"]).resolve_auxiliaries(task)


def check_record(cfg: DictConfig, options: SearchConfig, root: Path) -> None:
    """Claim ``root`` for this search, or refuse it: a folder holds one search, defined by its record. A record
    whose search trained nothing (a first start refused, or stopped before its first trial) protects nothing and is
    replaced; trials without a record are refused (a new search would choose among them)."""
    run = jsonable(run_record(cfg)) | {"trainer.max_epochs": int(cfg.trainer.max_epochs)}  # the full run's length
    record = {"run": run, "search": jsonable({k: v for k, v in asdict(options).items() if k not in UNRECORDED})}
    flat = {f"{k}": v for k, v in record["run"].items()} | {f"search.{k}": v for k, v in record["search"].items()}
    trained = [f.key for f in TrialFolder.every(root) if f.trained()]
    with file_lock(root / STUDY_LOCK):
        saved = read_json(root / RECORD_FILE)
        if saved is None and trained:
            raise ConfigError(
                f"{root} holds trials ({', '.join(trained[:3])}{', ...' if len(trained) > 3 else ''}) but no "
                f"{RECORD_FILE}: which search made them is unknown, and this search would choose among them. Start "
                f"this search in another folder (search.dir=...), or move {root / 'trials'} away"
            )
        if saved is not None and not trained and _differs(saved, flat, options, record):
            log.warning("search: %s holds a search that trained nothing; it is replaced by this one", root)
            if options.storage is None:  # its own study: the earlier start's asked-for trials go with it
                (root / STUDY_FILE).unlink(missing_ok=True)
            saved = None
        if saved is None:
            write_atomically(root / RECORD_FILE, json.dumps(record, indent=2))
            return
    if changed := _differs(saved, flat, options, record):
        raise ConfigError(
            f"{root} holds a search with another configuration; continuing it would mix the two. Changed: "
            + "; ".join(changed[:6])
            + ". Start this search in another folder (search.dir=...), or run the first one's command again."
        )


def _differs(saved: dict[str, Any], flat: dict[str, Any], options: SearchConfig, record: dict[str, Any]) -> list[str]:
    """What differs between a folder's recorded search and this one, on the options its strategy reads."""
    before = {f"{k}": v for k, v in saved["run"].items()} | {f"search.{k}": v for k, v in saved["search"].items()}
    reads = STRATEGIES[options.strategy].reads if options.strategy in STRATEGIES else tuple(record["search"])
    read = {f"search.{k}" for k in ("strategy", *reads)}
    before, now = ({k: v for k, v in d.items() if not k.startswith("search.") or k in read} for d in (before, flat))
    now = {k: v for k, v in now.items() if k in before}  # keys the framework gained since are not compared
    return differences(before, now, where="in the folder's search")


def run_search(cfg: DictConfig) -> dict[str, Any]:
    """Run (or continue) the search ``cfg`` describes in ``cfg.paths.output_dir``; returns search.json."""
    options = search_options(cfg)
    validate(cfg)  # the trials' common config: a bad key or value fails before any training
    if cfg.trainer.devices not in (1, "1") or cfg.trainer.num_nodes != 1:
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices}: a search trains its trials in its own process, one device "
            "each; start several workers with the same command instead (they share the study)"
        )
    callbacks = [c.get("_target_", "") for c in (cfg.get("callbacks") or {}).values()]
    if not any(t.rsplit(".", 1)[-1] == LastCheckpoint.__name__ for t in callbacks):
        raise ConfigError(
            f"callbacks={cfg.launch.choices.get('callbacks')}: a search continues each trial from its last.ckpt at "
            "the next rung; "
            "keep callbacks=default (or another with src.checkpoints.LastCheckpoint)"
        )
    root = Path(options.dir)
    root.mkdir(parents=True, exist_ok=True)
    space = Space(options, auxiliaries(cfg), options.seed)
    gridded = options.strategy == "grid" or options.strategy in ("halving", "hyperband") and options.points == "grid"
    example = space.grid()[-1] if gridded else space.sample(1)[0]  # the space is checked, and one trial's config
    check(options, space, int(cfg.trainer.max_epochs))
    check_record(cfg, options, root)
    keep_hydra_files(Path(cfg.paths.output_dir))  # accepted: a later refused start puts these files back
    trials = LiveTrials(cfg, options, space, root, open_study(options, root))
    trials.check(example)
    started = time.perf_counter()
    with between_runs(trials.resume):  # SIGTERM, in a trial or between two, names the search's command
        chosen, extra = run_strategy(options, space, trials, trials.study.study)
    result = summary(options, trials, chosen, extra, cfg)
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


def summary(
    options: SearchConfig, trials: LiveTrials, chosen: Trial | None, extra: dict, cfg: DictConfig
) -> dict[str, Any]:
    """search.json: the strategy, what it chose and on which dev score, what every trial spent."""
    points = trials.study.points()
    rows = [f.row(points.get(f.key), trials.full_epochs) for f in TrialFolder.every(trials.root)]
    costs = [r for r in rows if "runs" in r]  # trials that trained (a results.json)
    chosen_row = None
    if chosen is not None:
        row = next((r for r in rows if r["key"] == chosen.key), {})
        chosen_row = {
            "key": chosen.key,
            "point": chosen.point,
            "weights": row.get("weights"),
            "batching": row.get("batching"),
            "dev": chosen.best,
            "test": row.get("test"),
            "folder": str(trials.folder(chosen.key).path),
        }
    warnings = []
    startup, proposals = trials.study.startup_trials(), len(trials.study.points())
    if options.strategy in ("tpe", "gp") and startup and proposals <= startup:
        warnings.append(
            f"search={options.strategy}: each of its {proposals} proposals was one of the sampler's {startup} random "
            f"start-up proposals (Optuna's n_startup_trials): at this budget it searched as search=random does; "
            f"raise search.max_runs for the model to act"
        )
        log.warning("search: %s", warnings[-1])
    passes: dict[str, int] = {}
    for c in costs:
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
        "total_runs": sum(c["runs"] for c in costs),
        "total_optimizer_steps": sum(c["optimizer_steps"] for c in costs),
        "total_examples": sum(c["examples"] for c in costs),
        "passes": passes,
        "wall_seconds": sum(c["wall_seconds"] for c in costs),
        **extra,
        "warnings": warnings,
        "trials": rows,
    }
