"""Compose the config, train with the chosen weighting method, test, and write ``results.json``.

python -m src.run task=multimnist_left method=uniform
python -m src.run -m method=single_task,uniform seed=0,1
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.checkpoints import check_resume, last_checkpoint, resume_path, run_record
from src.config import ConfigError, validate
from src.data.base import MultiTaskDataModule
from src.module import MultiTaskModule, StopRequested

log = logging.getLogger(__name__)


def instantiate_all(section: DictConfig | None) -> list[Any]:
    """Objects for every entry of a logger/callback section that has a ``_target_``."""
    if not section:
        return []
    return [instantiate(c) for c in section.values() if isinstance(c, DictConfig) and "_target_" in c]


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The full resolved config, as the loggers record it (Hydra's own node left out)."""
    return {
        k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig | ListConfig) else cfg[k]
        for k in cfg
        if k != "hydra"
    }


def build(
    cfg: DictConfig, callbacks: Sequence[pl.Callback] = ()
) -> tuple[MultiTaskDataModule, MultiTaskModule, pl.Trainer]:
    """Validate ``cfg`` and build the DataModule, the LightningModule (with its method) and the Trainer.

    ``callbacks`` join the configured ones (``cfg.callbacks``): a test or a script adds its own without a config.
    """
    validate(cfg)  # fails on a bad key or value before any data is loaded
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: MultiTaskDataModule = instantiate(cfg.task)
    method = instantiate(cfg.method)
    method.setup(datamodule.tasks, datamodule.target)
    datamodule.schedule_with(method.plan_epoch)
    model = instantiate(cfg.model.net)(tasks=datamodule.tasks)
    optimizer = instantiate(cfg.model.optimizer)
    schedule = (cfg.model.lr_schedule.kind, cfg.model.lr_schedule.warmup)
    module = MultiTaskModule(
        model, method, datamodule.tasks, optimizer, seed=cfg.seed, lr_schedule=schedule, run_record=run_record(cfg)
    )
    callbacks = [*instantiate_all(cfg.get("callbacks")), *callbacks]
    # The method plans every epoch afresh (mini-epochs, per-epoch samples), so loaders are rebuilt.
    # Checkpoints are written only by the checkpoint callbacks configured (`callbacks=none`: none at all),
    # not by the default one Lightning would otherwise add.
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        logger=instantiate_all(cfg.get("logger")) or False,
        callbacks=callbacks,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        reload_dataloaders_every_n_epochs=1,
        plugins=cluster_plugins(),
        # each process takes its share of every planned step (src.data.schedule.shard), not a sampler's
        use_distributed_sampler=False,
        strategy=ddp_strategy(cfg.trainer.strategy),
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    )
    if trainer.world_size > 1 and _multirun() and not _on_slurm():
        # Lightning starts the other processes by re-running the command line, which in a local multirun is
        # the whole sweep: each would launch its own sweep
        raise ConfigError(
            f"trainer.devices × trainer.num_nodes = {trainer.world_size} processes inside a local multirun is not "
            "supported: run the jobs as single runs, or sweep on a cluster (hydra/launcher=slurm, where Slurm "
            "starts the processes)"
        )
    return datamodule, module, trainer


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig

    try:
        mode = HydraConfig.get().mode
    except ValueError:
        return False
    return mode is not None and mode.name == "MULTIRUN"


def _on_slurm() -> bool:
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return SLURMEnvironment.detect()


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX): bf16 autocast pays there."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no way to tell, so no
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: Any, accelerator: str) -> Any:
    """``auto``: ``bf16-mixed`` where the hardware computes bfloat16 (a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX), else ``32-true``. Any other value is Lightning's, unchanged."""
    if precision != "auto":
        return precision
    import torch

    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    # on a GPU, only hardware bf16 (Ampere and later): emulated bf16 (T4, V100) would train slower than float32
    fast = (
        torch.cuda.is_bf16_supported(including_emulation=False)
        if on_gpu
        else accelerator in ("auto", "cpu") and cpu_has_bf16()
    )
    resolved = "bf16-mixed" if fast else "32-true"
    log.info("trainer.precision=auto: %s (%s)", resolved, "GPU" if on_gpu else "CPU")
    return resolved


def ddp_strategy(name: str) -> str:
    """``ddp`` as ``ddp_find_unused_parameters_true``: a step may leave parameters out of its loss (the
    auxiliary heads in single-task training, every head but one in an αVIL block), which plain DDP rejects."""
    return {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}.get(
        name, name
    )


def cluster_plugins() -> list[Any] | None:
    """On Slurm, Lightning's environment without its SIGUSR1 auto-requeue.

    That requeue saves a checkpoint in the middle of an epoch and resumes from it, where a resume here is
    exact only at epoch boundaries (a method's per-epoch record, αVIL's mini-epochs). Requeueing is left to
    the Slurm launcher (submitit, ``hydra.launcher.max_num_timeout``) and to Slurm's own preemption requeue;
    the requeued job runs in the same folder and ``ckpt_path=auto`` continues from its last.ckpt.
    """
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if _on_slurm() else None


def train(cfg: DictConfig, callbacks: Sequence[pl.Callback] = ()) -> dict[str, Any]:
    """Fit, test at the best target-dev checkpoint, write ``results.json``; returns the results.

    ``callbacks`` join the configured ones (see :func:`build`). SIGTERM stops the run with status 143 and the
    resume commands in every phase: while setting up and loading data (here), and in training, validation and
    testing (Lightning's handler, mapped below).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        return _train(cfg, callbacks)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return _train(cfg, callbacks)
    except StopRequested:  # outside Lightning's loops: validating, building, loading data, between fit and test
        raise Preempted(_resume_hint(cfg, None, _PHASE["now"])) from None
    except KeyboardInterrupt:  # Ctrl-C outside Lightning's loops (inside them Lightning exits 1: _interrupted)
        raise Preempted(_resume_hint(cfg, None, _PHASE["now"], "SIGINT (Ctrl-C)"), 128 + signal.SIGINT) from None
    finally:
        _PHASE["now"] = "while setting up, before training"
        signal.signal(signal.SIGTERM, previous)


_PHASE = {"now": "while setting up, before training"}  # where a signal outside Lightning's loops lands


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM outside Lightning's loops stops the run at once; inside them Lightning's handler (which calls
    this one too) notes it and the run stops at the next step, at an epoch boundary for its checkpoints."""
    if signal.getsignal(signal.SIGTERM) is _stop_on_sigterm:
        raise StopRequested("SIGTERM received")


def _train(cfg: DictConfig, callbacks: Sequence[pl.Callback]) -> dict[str, Any]:
    validate(cfg)
    if (done := finished(cfg)) is not None:
        return done
    if (ckpt := resume_path(cfg)) is not None:
        check_resume(cfg, ckpt)  # before any data loads: a checkpoint of another run is refused at once
    datamodule, module, trainer = build(cfg, callbacks)
    method, loggers, out_dir = module.method, trainer.loggers, Path(cfg.paths.output_dir)
    start = time.perf_counter()
    status = "failed"
    try:
        for lg in loggers:  # inside the try: this starts the W&B run, which must always be closed
            lg.log_hyperparams(resolved(cfg))
        # weights_only: a checkpoint is data, never code (torch.load would otherwise unpickle anything)
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        except (StopRequested, SIGTERMException):  # ours mid-epoch; Lightning's between epochs or in validation
            raise Preempted(_resume_hint(cfg, trainer)) from None
        except SystemExit:
            _interrupted(cfg, trainer)
            raise
        _PHASE["now"] = "after training, before its test"
        keeps_best = trainer.checkpoint_callback is not None and trainer.checkpoint_callback.monitor is not None
        results = _fit_results(cfg, datamodule, method, module, tests_best=keeps_best)
        if cfg.test:
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            try:
                trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            except SIGTERMException:  # Lightning's, raised as a SystemExit with status 0
                raise Preempted(_resume_hint(cfg, trainer, "while testing, after training finished")) from None
            except SystemExit:
                _interrupted(cfg, trainer, "while testing, after training finished")
                raise
            target = module.test_results[datamodule.target]
            results["target_test"] = target["score"]
            results["test"] = module.test_results
        _PHASE["now"] = "after testing, while writing results.json"
        results["wall_seconds"] = time.perf_counter() - start
        if trainer.is_global_zero:  # one results.json, whatever the number of processes
            out_dir.mkdir(parents=True, exist_ok=True)
            write_atomically(out_dir / "results.json", json.dumps(results, indent=2))
        if trainer.received_sigterm:  # noted by Lightning in the last test batch, too late for it to stop the loop
            raise Preempted(f"stopped by SIGTERM after testing; results.json was written: {out_dir / 'results.json'}")
        headline = {
            f"final/{k}": results[k] for k in ("target_dev", "target_test", "best_epoch") if results.get(k) is not None
        }
        for lg in loggers:  # the last value of a key becomes its W&B summary
            lg.log_metrics(headline)
        status = "success"
        if trainer.is_global_zero:
            log.info("results: %s", out_dir / "results.json")
        return results
    finally:
        for lg in loggers:
            lg.finalize(status)
        if "wandb" in sys.modules:  # close the W&B run even on failure, so the next sweep job starts clean
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=0 if status == "success" else 1)
                # finish() can return before W&B's service has written the run's last records; teardown
                # waits for it, so the run folder is complete when train() returns (its atexit hook does
                # the same, but not reliably in joblib's worker processes)
                wandb.teardown()
        _end_process_group()


def _end_process_group() -> None:
    """Destroy the DDP process group Lightning started (it leaves it open).

    Left open, gloo's threads are still joinable when the interpreter exits, and C++ aborts the process
    ("terminate called without an active exception", status -6) after a run that otherwise succeeded.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class Preempted(SystemExit):
    """The run received SIGTERM (Slurm preemption, ``scancel``, a stopped container) or SIGINT (Ctrl-C) and stopped.

    A ``SystemExit`` with status 128 + the signal's number (143, 130), so it is not caught as a failed job: a
    sequential sweep stops here too, as the process it runs in is being stopped, and a scheduler sees a
    non-zero exit.
    """

    def __init__(self, message: str, code: int = 128 + signal.SIGTERM):
        log.error(message)
        super().__init__(code)


def _interrupted(cfg: DictConfig, trainer: pl.Trainer, when: str = "") -> None:
    """Lightning answers Ctrl-C with ``sys.exit(1)`` and SIGINT ignored from then on: status 130 and the resume
    commands instead, and Ctrl-C works again."""
    if trainer.interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise Preempted(_resume_hint(cfg, trainer, when, "SIGINT (Ctrl-C)"), 128 + signal.SIGINT) from None


def _resume_hint(cfg: DictConfig, trainer: pl.Trainer | None, when: str = "", stopped_by: str = "SIGTERM") -> str:
    """What stopped, what is kept, and the two commands that continue the run, quoted so they paste as printed."""
    last = last_checkpoint(cfg)
    where = f"The last checkpoint is {last}" if last.exists() else "No checkpoint was written yet"
    kept = [o for o in _overrides() if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    command = shlex.join(["python", "-m", "src.run", *kept])
    in_place = shlex.quote(f"hydra.run.dir={cfg.paths.output_dir}")
    return (
        f"stopped by {stopped_by} {when or f'in epoch {trainer.current_epoch}'}; no results.json was written. {where}. "
        f"Continue in this folder with `{command} {in_place}` (ckpt_path=auto finds last.ckpt there; a sweep: run "
        f"it again with hydra.sweep.dir=<its folder>), or in a new one with "
        f"`{command} {shlex.quote(f'ckpt_path={last}')}`"
    )


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
    record, recorded = _jsonable(run_record(cfg)), results.get("run_record", {})
    if changed := sorted(k for k in recorded if record.get(k) != recorded[k]):
        raise ConfigError(
            f"{path.parent} holds a finished run with other settings ({', '.join(changed[:5])}"
            f"{', …' if len(changed) > 5 else ''}): start this run in a new folder"
        )
    if results.get("epochs") != cfg.trainer.max_epochs or results.get("target_test") is None and cfg.test:
        return None  # more epochs, or the test not yet run: continue from last.ckpt
    log.info("%s: this run already finished; its results are kept as they are", path)
    return results


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as it reads back from results.json (tuples as lists, anything else as its text)."""
    return json.loads(json.dumps(record, default=str))


def budget_record(datamodule: MultiTaskDataModule, per_epoch: dict[str, int]) -> dict[str, Any]:
    """The run's budget: its rule with the rule's parameter, examples of each task per epoch, the batching."""
    rule = datamodule.budget_rule
    parameter = {"temperature": datamodule.temperature, "fraction": datamodule.budget_fraction}
    out: dict[str, Any] = {"rule": rule}
    if rule in parameter:
        out[rule] = parameter[rule]
    return {**out, "per_epoch": per_epoch, "batching": datamodule.batching}


def peak_memory_mb(module: MultiTaskModule) -> float:
    """The peak memory of training: the GPU's allocated memory on CUDA, else the process's peak resident size."""
    import resource

    if module.peak_gpu_mb is not None:  # measured before Lightning moved the model back to the CPU
        return module.peak_gpu_mb
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fit_results(cfg: DictConfig, datamodule, method, module: MultiTaskModule, tests_best: bool) -> dict[str, Any]:
    """The run's record; the target's dev score and the tested epoch belong together: the best dev epoch's
    checkpoint when a checkpoint callback keeps it (``tests_best``), else the last epoch's weights."""
    scores = module.dev_scores
    best = max(range(len(scores)), key=lambda e: -math.inf if math.isnan(scores[e]) else scores[e]) if scores else None
    tested = best if tests_best or best is None else len(scores) - 1
    budget, epochs_run = datamodule.budget(), len(module.epoch_seconds)
    return {
        "target": datamodule.target,
        "method": cfg.method._target_.rsplit(".", 1)[-1],
        "method_choice": _choice("method"),
        "task_config": _choice("task"),
        "tasks": method.names,
        "target_metric": datamodule.tasks[0].headline,
        "target_dev": scores[tested] if tested is not None else None,
        "target_test": None,
        "best_epoch": best if tests_best else None,  # None: no checkpoint of the best epoch was kept
        "tested_epoch": tested,
        "tested_weights": "best" if tests_best else "last",
        "dev_history": scores,
        "dev_loss_history": module.dev_losses,
        "warnings": module.warnings,  # e.g. a diverging loss: such a run's numbers are not a method's result
        "epoch_seconds": module.epoch_seconds,
        "mean_epoch_seconds": sum(module.epoch_seconds) / len(module.epoch_seconds)
        if module.epoch_seconds
        else math.nan,
        "train_examples": {t: len(d) for t, d in datamodule.train_sets.items()},
        "examples_seen": dict(module.examples_seen),  # examples each task was trained on, over all epochs
        "budget": budget_record(datamodule, budget),
        "schedule": method.schedule or datamodule.batching,  # what the steps held: mixed, sampled, blocks, ...
        # examples seen over what the budget planned, per task: 1 for a method that met it; ForkMerge's target
        # trains in every branch (K+1), post-training's phases split the epochs
        "budget_multiple": {t: module.examples_seen[t] / max(1, epochs_run * budget[t]) for t in budget},
        "dev_examples": len(datamodule.dev_set),
        "optimizer_steps": module.spent["optimizer_steps"],
        "passes": {"forward": module.spent["forward_passes"], "backward": module.spent["backward_passes"]},
        "dev_examples_used": module.spent["dev_examples_used"],
        "peak_memory_mb": peak_memory_mb(module),
        **(datamodule.record() if hasattr(datamodule, "record") else {}),  # text tasks: string labels' order
        "precision": str(module.trainer.precision),  # as resolved (trainer.precision=auto: what the hardware got)
        "weights": method.weights(),
        **method.histories(),
        **{k: v for cb in module.trainer.callbacks if hasattr(cb, "results") for k, v in cb.results().items()},
        "seed": cfg.seed,
        "epochs": cfg.trainer.max_epochs,
        "overrides": _overrides(),
        "run_record": _jsonable(run_record(cfg)),
    }


def _choice(group: str) -> str | None:
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:
        return None


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the target's best dev score (what the Optuna sweeper maximises)."""
    try:
        return train(cfg)["target_dev"]
    except ConfigError:
        if not _multirun():  # a sweep keeps the folder, so its report lists the job that failed
            _remove_unused_run_folder(Path(cfg.paths.output_dir))
        raise


def _remove_unused_run_folder(folder: Path) -> None:
    """A single run refused before it started leaves no folder: Hydra made it with only its config and log."""
    if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".hydra", "run.log"}:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
