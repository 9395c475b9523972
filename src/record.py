"""The run record: how a run fills ``results.json`` (its keys are declared in :mod:`src.results`), writes it
atomically, and keeps the folder's Hydra files across a refused start."""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from src.checkpoints import last_checkpoint, run_record
from src.files import copy_atomically
from src.lock import rank_zero
from src.results import RunResults
from src.schema import ConfigError

if TYPE_CHECKING:
    from src.data.base import MultiTaskDataModule
    from src.module import MultiTaskModule

log = logging.getLogger(__name__)


def budget_record(datamodule: MultiTaskDataModule, per_epoch: dict[str, int], batching: str) -> dict[str, Any]:
    """The run's budget: its rule with the rule's parameter, examples of each task per epoch, the batching."""
    rule = datamodule.budget_rule
    parameter = {"temperature": datamodule.temperature, "fraction": datamodule.budget_fraction}
    out: dict[str, Any] = {"rule": rule}
    if rule in parameter:
        out[rule] = parameter[rule]
    return {**out, "per_epoch": per_epoch, "batching": batching}


def peak_memory_mb(module: MultiTaskModule) -> float:
    """The peak memory of training: the GPU's allocated memory on CUDA, else the process's peak resident size
    since training started (``reset_peak_rss``)."""
    if module.peak_gpu_mb is not None:  # measured before Lightning moved the model back to the CPU
        return module.peak_gpu_mb
    return peak_rss_mb()


def reset_peak_rss() -> bool:
    """Start the process's peak resident size afresh (Linux: writing 5 to ``clear_refs`` resets ``VmHWM``), so that
    a job of a multirun, which shares its process with the jobs before it, is not charged with their peak. False
    where it cannot be reset (not Linux, or not allowed): the peak is then the process's since it started."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """The process's peak resident size in MB: since the last ``reset_peak_rss`` on Linux (``VmHWM``), else since
    the process started (``getrusage``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def fit_results(cfg: DictConfig, datamodule: MultiTaskDataModule, module: MultiTaskModule) -> RunResults:
    """The record of a fitted run, before its test. The target's dev score and the tested epoch belong together:
    the best dev epoch's checkpoint when one was kept, else the last epoch's weights."""
    method, trainer = module.method, module.trainer
    checkpoint = trainer.checkpoint_callback
    tests_best = bool(checkpoint is not None and checkpoint.monitor is not None and checkpoint.best_model_path)
    scores = module.dev_scores
    best = max(range(len(scores)), key=lambda e: -math.inf if math.isnan(scores[e]) else scores[e]) if scores else None
    last = len(module.epoch_seconds) - 1 if module.epoch_seconds else None
    tested = best if tests_best else last
    budget, epochs_run = datamodule.budget(), len(module.epoch_seconds)
    schedule = method.schedule or datamodule.batching
    histories = method.histories()
    extra = {k: v for k, v in histories.items() if k != "weight_history"}
    extra.update(datamodule.record() if hasattr(datamodule, "record") else {})
    extra.update({k: v for cb in trainer.callbacks if hasattr(cb, "results") for k, v in cb.results().items()})
    spent = module.spent
    return RunResults(
        target=datamodule.target,
        method=cfg.method._target_.rsplit(".", 1)[-1],
        method_choice=cfg.launch.choices.get("method"),
        task_config=cfg.launch.choices.get("task"),
        tasks=method.names,
        target_metric=datamodule.tasks[0].headline,
        target_dev=scores[tested] if tested is not None and tested < len(scores) else None,
        best_epoch=best if tests_best else None,
        tested_epoch=tested,
        tested_weights="best" if tests_best else "last",
        dev_history=scores,
        dev_loss_history=module.dev_losses,
        warnings=module.warnings,
        epoch_seconds=module.epoch_seconds,
        mean_epoch_seconds=sum(module.epoch_seconds) / epochs_run if epochs_run else math.nan,
        train_examples={t: len(d) for t, d in datamodule.train_sets.items()},
        examples_seen=dict(module.examples_seen),
        budget=budget_record(datamodule, budget, schedule),
        schedule=schedule,
        # ForkMerge's target trains in every branch (K+1), post-training's phases split the epochs
        budget_multiple={t: module.examples_seen[t] / max(1, epochs_run * budget[t]) for t in budget},
        dev_examples=len(datamodule.dev_set),
        optimizer_steps=spent["optimizer_steps"],
        passes={"forward": spent["forward_passes"], "backward": spent["backward_passes"]}
        | ({"applied": spent["applied_gradients"]} if spent.get("applied_gradients") else {}),
        dev_examples_used=spent["dev_examples_used"],
        peak_memory_mb=peak_memory_mb(module),
        peak_memory_scope=module.peak_scope,
        precision=str(trainer.precision),  # as resolved (trainer.precision=auto: what the hardware got)
        weights=method.weights(),
        weight_history=histories["weight_history"],
        seed=cfg.seed,
        epochs=cfg.trainer.max_epochs,
        overrides=list(cfg.launch.overrides),
        run_record=jsonable(run_record(cfg)),
        data=dict(datamodule.identity),
        extra=extra,
    )


def learned_weights(results: dict[str, Any]) -> dict[str, float]:
    """What a run's method learned, as fixed weights: each task's weight over the target's, averaged over the
    last half of its epochs (the weights a method settles on, not its first moves)."""
    history = results.get("weight_history") or []
    target = results["tasks"][0]
    tail = [e for e in history[len(history) // 2 :] if e.get(target, 0) > 0]  # ForkMerge's target may get λ = 0
    if not tail:
        return {t: float(w) for t, w in (results.get("weights") or {}).items() if t != target}
    return {t: sum(e[t] / e[target] for e in tail) / len(tail) for t in tail[0] if t != target}


def jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as it reads back from results.json (tuples as lists, anything else as its text)."""
    return json.loads(json.dumps(record, default=str))


def finished(cfg: DictConfig) -> dict[str, Any] | None:
    """The results of this very run if it already finished in its folder (``ckpt_path=auto``), else ``None``.

    A sweep started again in its folder then skips its finished jobs and keeps their records (figures, wall
    time) as they were. The same folder with another run's settings is refused; keys the framework gained
    after the run finished (absent from its record) are not compared.
    """
    path = Path(cfg.paths.output_dir) / "results.json"
    if cfg.ckpt_path != "auto" or not path.exists():
        return None
    results = json.loads(path.read_text())
    record, recorded = jsonable(run_record(cfg)), results.get("run_record", {})
    if changed := sorted(k for k in recorded if record.get(k) != recorded[k]):
        raise ConfigError(
            f"{path.parent} holds a finished run with other settings ({', '.join(changed[:5])}"
            f"{', …' if len(changed) > 5 else ''}): start this run in a new folder"
        )
    if results.get("epochs") != cfg.trainer.max_epochs or results.get("target_test") is None and cfg.test:
        last = last_checkpoint(cfg)
        if not last.exists() and not any(last.parent.glob("*.ckpt")):  # callbacks=none: it would start over
            # (best checkpoints without a last.ckpt are refused where the resume is found: resume_path names them)
            raise ConfigError(
                f"{path.parent} holds a finished run of {results.get('epochs')} epochs and no last.ckpt to continue "
                f"from (its callbacks wrote none): trainer.max_epochs={cfg.trainer.max_epochs} here would train "
                "from scratch and replace its results.json. Start this run in a new folder (hydra.run.dir=...)"
            )
        return None  # more epochs, or the test not yet run: continue from last.ckpt
    log.info("%s: this run already finished; its results are kept as they are", path)
    return results


HYDRA_SUBDIR = ".hydra"
ACCEPTED = "accepted"  # .hydra/accepted/: the files of the last start the folder's checks let through


def keep_hydra_files(folder: Path) -> None:
    """Remember the config Hydra wrote for this start, now that the folder's checks let it through.

    Hydra writes ``.hydra/{config,hydra,overrides}.yaml`` before the task function runs, so a start that is then
    refused (another run's settings, a changed best-checkpoint rule) or skipped (the run already finished) has
    overwritten the files of the run the folder holds; :func:`restore_hydra_files` puts these back.
    """
    written = Path(folder) / HYDRA_SUBDIR
    if not rank_zero() or not written.is_dir():  # hydra.output_subdir=null, or not started by Hydra
        return
    kept = written / ACCEPTED
    kept.mkdir(exist_ok=True)
    for path in written.glob("*.yaml"):
        copy_atomically(path, kept / path.name)


def restore_hydra_files(folder: Path) -> None:
    """Put back the ``.hydra`` files of the folder's last accepted start (no-op where none was kept)."""
    written = Path(folder) / HYDRA_SUBDIR
    kept = written / ACCEPTED
    if not rank_zero() or not written.is_dir():
        return
    if not kept.is_dir():
        holds_run = (Path(folder) / "results.json").exists() or any(Path(folder).glob("checkpoints/*.ckpt"))
        if holds_run:  # a folder from before .hydra/accepted/: its run's files are gone; the refused ones go aside
            aside = written / "refused"
            aside.mkdir(exist_ok=True)
            for path in written.glob("*.yaml"):
                os.replace(path, aside / path.name)
            log.warning(
                "%s: this folder's run predates .hydra/accepted/, so Hydra's rewrite of its files cannot be undone; "
                "the refused start's files are moved to %s, and the run's own settings are in its results.json "
                "(run_record, overrides) and checkpoints",
                written,
                aside,
            )
        return
    for path in kept.glob("*.yaml"):
        copy_atomically(path, written / path.name)
    log.info("%s: the files of the folder's last accepted start are put back (this start did not run)", written)
