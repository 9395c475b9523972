"""Train with the chosen weighting method, test, and write ``results.json``: a run as a function of its config.

:func:`train` is what ``python -m src.run`` (:mod:`src.run`) and every trial of a search call; :func:`build`
assembles the DataModule, the LightningModule and the Trainer without fitting (tests, benchmarks).

Orchestration only: the run record lives in :mod:`src.record`, hardware policy in :mod:`src.hardware`,
stopping on a signal in :mod:`src.preemption`, resuming in :mod:`src.checkpoints`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from src.checkpoints import check_resume, resume_path, run_record
from src.config import ConfigError, validate
from src.data.base import MultiTaskDataModule
from src.files import write_atomically
from src.hardware import cluster_plugins, ddp_strategy, end_process_group, on_slurm, resolve_precision
from src.lock import FolderBusy, locked
from src.module import MultiTaskModule
from src.preemption import Preempted, in_lightning, stoppable
from src.record import finished, fit_results, keep_hydra_files, restore_hydra_files

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
    return _assemble(cfg, callbacks)


def _assemble(
    cfg: DictConfig, callbacks: Sequence[pl.Callback]
) -> tuple[MultiTaskDataModule, MultiTaskModule, pl.Trainer]:
    """:func:`build` of a validated ``cfg``."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: MultiTaskDataModule = instantiate(cfg.task)
    method = instantiate(cfg.method)
    method.setup(datamodule.tasks, datamodule.target)
    datamodule.schedule_with(method.plan_epoch)
    model = instantiate(cfg.model.net)(tasks=datamodule.tasks)
    optimizer = instantiate(cfg.model.optimizer)
    lr = cfg.model.lr_schedule
    schedule = (lr.kind, lr.warmup, lr.epochs)
    module = MultiTaskModule(
        model, method, datamodule.tasks, optimizer, seed=cfg.seed, lr_schedule=schedule, run_record=run_record(cfg)
    )
    callbacks = [*instantiate_all(cfg.get("callbacks")), *callbacks]
    # The method plans every epoch afresh (αVIL's blocks, per-epoch samples), so loaders are rebuilt.
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
    if trainer.world_size > 1 and cfg.launch.multirun and not on_slurm():
        # Lightning starts the other processes by re-running the command line, which in a local multirun is
        # the whole sweep: each would launch its own sweep
        raise ConfigError(
            f"trainer.devices × trainer.num_nodes = {trainer.world_size} processes inside a local multirun is not "
            "supported: run the jobs as single runs, or sweep on a cluster (hydra/launcher=slurm, where Slurm "
            "starts the processes)"
        )
    return datamodule, module, trainer


def train(cfg: DictConfig, callbacks: Sequence[pl.Callback] = ()) -> dict[str, Any]:
    """Fit, test at the best target-dev checkpoint, write ``results.json``; returns the results.

    ``callbacks`` join the configured ones (see :func:`build`). SIGTERM and Ctrl-C stop the run in every phase
    with the commands that continue it (:mod:`src.preemption`).
    """
    folder = Path(cfg.paths.output_dir)
    with stoppable(cfg) as phase:
        try:
            validate(cfg)
            with locked(folder):  # a second run on this folder refuses, naming this one
                if (done := finished(cfg)) is not None:
                    restore_hydra_files(folder)  # .hydra describes the finished run, not this call's overrides
                    return done
                if (ckpt := resume_path(cfg)) is not None:
                    check_resume(cfg, ckpt)  # before any data loads: a checkpoint of another run is refused at once
                keep_hydra_files(folder)  # accepted: this start's config is the folder's from now on
                datamodule, module, trainer = _assemble(cfg, callbacks)
                return _fit_and_test(cfg, datamodule, module, trainer, ckpt, phase)
        except (ConfigError, FolderBusy):
            restore_hydra_files(folder)  # refused: Hydra's rewrite of .hydra must not replace the run's config
            raise


def _fit_and_test(cfg, datamodule, module: MultiTaskModule, trainer: pl.Trainer, ckpt, phase) -> dict[str, Any]:
    loggers, out_dir = trainer.loggers, Path(cfg.paths.output_dir)
    start = time.perf_counter()
    status = "failed"
    try:
        for lg in loggers:  # inside the try: this starts the W&B run, which must always be closed
            lg.log_hyperparams(resolved(cfg))
        with in_lightning(cfg, trainer):  # weights_only: a checkpoint is data, never code
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        phase.now = "after training, before its test"
        results = fit_results(cfg, datamodule, module)
        if cfg.test:
            best = trainer.checkpoint_callback.best_model_path if results.tested_weights == "best" else ""
            with in_lightning(cfg, trainer, "while testing, after training finished"):
                trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
            results.target_test = module.test_results[datamodule.target]["score"]
            results.test = module.test_results
        module.method.finish_record(results)
        phase.now = "after testing, while writing results.json"
        results.wall_seconds = time.perf_counter() - start
        record = results.to_json()
        if trainer.is_global_zero:  # one results.json, whatever the number of processes
            out_dir.mkdir(parents=True, exist_ok=True)
            write_atomically(out_dir / "results.json", json.dumps(record, indent=2))
        if trainer.received_sigterm:  # noted by Lightning in the last test batch, too late for it to stop the loop
            raise Preempted(f"stopped by SIGTERM after testing; results.json was written: {out_dir / 'results.json'}")
        headline = {
            f"final/{k}": record[k] for k in ("target_dev", "target_test", "best_epoch") if record[k] is not None
        }
        for lg in loggers:  # the last value of a key becomes its W&B summary
            lg.log_metrics(headline)
        status = "success"
        if trainer.is_global_zero:
            log.info("results: %s", out_dir / "results.json")
        return record
    finally:
        for lg in loggers:
            lg.finalize(status)
        _close_wandb(status)
        end_process_group()


def _close_wandb(status: str) -> None:
    """Close the W&B run even on failure, so the next sweep job starts clean."""
    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=0 if status == "success" else 1)
        # finish() can return before W&B's service has written the run's last records; teardown waits for them
        # (W&B's atexit hook would too, but not reliably in joblib's workers)
        wandb.teardown()
