"""Resuming: which checkpoint a run continues from, whether it fits the run, and the best checkpoint it tests.

A checkpoint records what defines its run (:func:`run_record`: the task setup, the method and its
options, the model and optimizer, the seed, the numerics). A resume that changes any of it is refused
before any data loads, with the keys named; what cannot change a run's result may change
(:data:`SAFE_TO_CHANGE`: ``trainer.max_epochs`` unless the learning rate follows a schedule, the hardware,
loggers, callbacks other than the best checkpoint's rule (:data:`BEST_RULE`), paths, ``test``).

``ckpt_path=auto`` (the default) continues from ``<output_dir>/checkpoints/last.ckpt`` when it exists: a run
started again in its own folder (``hydra.run.dir=<run>``, a sweep re-run with ``hydra.sweep.dir=<sweep>``,
a Slurm job requeued after preemption) picks up where it stopped; a fresh folder starts from scratch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from src.files import copy_atomically
from src.schema import ConfigError

log = logging.getLogger(__name__)

RECORD_KEY = "run_record"
RECORDED = ("task", "method", "model", "trainer", "seed")  # the config groups a record is made from
SAFE_TO_CHANGE = (  # recorded groups' keys a resume may change: they cannot change what the run computes
    "task.data_dir",
    "task.cache_dir",
    "task.download",
    "task.verify_checksums",
    "task.num_workers",
    "task.eval_batch_size",
    "trainer.max_epochs",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.default_root_dir",
)


# what "best" means (which checkpoint is tested): a resume under another rule would keep two "best" files and
# test the old rule's choice; recorded beside the groups, with the value a record without them was written under
BEST_RULE = {"callbacks.model_checkpoint.monitor": "dev/score", "callbacks.model_checkpoint.mode": "max"}


def run_record(cfg: DictConfig) -> dict[str, Any]:
    """What defines the run ``cfg`` describes: its recorded keys (dotted) and their values.

    A value written as an interpolation is recorded as written (``${paths.data_dir}/models/x``), so moving
    the data to another folder is no change; the key it points to is recorded itself when it defines the run.
    """
    record = dict(_leaves(OmegaConf.masked_copy(cfg, [k for k in RECORDED if k in cfg]), ""))
    # a learning rate that decays to 0 at the last epoch follows trainer.max_epochs (unless laid over a length
    # of its own, model.lr_schedule.epochs): more epochs, another run
    scheduled = OmegaConf.select(cfg, "model.lr_schedule.kind", default="constant") != "constant"
    scheduled = scheduled and OmegaConf.select(cfg, "model.lr_schedule.epochs", default=None) is None
    record.update({k: v for k in BEST_RULE if (v := OmegaConf.select(cfg, k, default=None)) is not None})
    return {k: v for k, v in record.items() if k not in SAFE_TO_CHANGE or (scheduled and k == "trainer.max_epochs")}


def _leaves(node: DictConfig, prefix: str) -> Iterator[tuple[str, Any]]:
    for key in node:
        child, path = node._get_node(key), f"{prefix}{key}"
        if child._is_interpolation():
            yield path, child._value()
        elif isinstance(child, DictConfig):
            yield from _leaves(child, f"{path}.")
        elif isinstance(child, ListConfig):
            yield path, OmegaConf.to_container(child, resolve=True)
        else:
            yield path, child._value()


def resume_path(cfg: DictConfig) -> Path | None:
    """The checkpoint this run continues from: ``ckpt_path``, or under ``auto`` its own last.ckpt if any."""
    if cfg.ckpt_path is None:
        return None
    if cfg.ckpt_path == "auto":
        last = last_checkpoint(cfg)
        if last.exists():
            log.info("ckpt_path=auto: continuing from %s", last)
            return last
        if found := sorted(p.name for p in last.parent.glob("*.ckpt")):
            # a run was here: starting over would overwrite its record and leave its checkpoints beside new ones
            raise ConfigError(
                f"{last.parent} holds {', '.join(found)} but no last.ckpt to continue from: resume from one of them "
                f"with ckpt_path=<file> into a new folder, or start this run in a new folder"
            )
        return None
    return Path(cfg.ckpt_path)


def last_checkpoint(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def check_resume(cfg: DictConfig, path: Path) -> None:
    """Refuse a checkpoint that is missing, not one of ours, or from a run that ``cfg`` does not describe."""
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: no such file")
    try:  # mmap: only the small record is read here; Lightning loads the tensors when fitting
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise ConfigError(
            f"ckpt_path={path} is not a checkpoint this framework can read ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). Checkpoints are loaded with weights_only=True and "
            "must be a last.ckpt or best-*.ckpt a run wrote."
        ) from None
    if not isinstance(checkpoint, dict) or RECORD_KEY not in checkpoint:
        raise ConfigError(
            f"ckpt_path={path} holds no record of the run that wrote it (a Lightning checkpoint from another "
            "program, or from this framework before runs were recorded); it cannot be resumed safely"
        )
    saved, now = checkpoint[RECORD_KEY], run_record(cfg)
    saved = {**{k: v for k, v in BEST_RULE.items() if k in now}, **saved}  # written before the rule was recorded
    # an option the framework gained after the checkpoint was written, left at null, changes nothing
    now = {k: v for k, v in now.items() if k in saved or v is not None}
    if changed := differences(saved, now):
        raise ConfigError(
            f"ckpt_path={path} was written by a different run; resuming would mix the two. Changed: "
            + "; ".join(changed)
            + ". Resume with the checkpoint's settings (only trainer.max_epochs, the hardware, loggers, callbacks,"
            " paths and test may change) or start a new run without ckpt_path."
        )


def differences(saved: dict[str, Any], now: dict[str, Any], where: str = "in the checkpoint") -> list[str]:
    """``key: saved → now`` for every recorded key whose value differs (or exists on one side only)."""
    missing = object()
    out = []
    for key in sorted(saved.keys() | now.keys()):
        before, after = saved.get(key, missing), now.get(key, missing)
        if before != after:
            show = lambda v: "(absent)" if v is missing else repr(v)  # noqa: E731
            out.append(f"{key}: {show(before)} {where}, {show(after)} now")
    return out


class DurableCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose files are whole or absent: each is written beside its name and
    renamed over it, so a kill while saving leaves the previous file as it was."""

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        part = f"{filepath}.part"
        try:
            super()._save_checkpoint(trainer, part)
        except OSError as e:
            Path(part).unlink(missing_ok=True)
            raise OSError(
                e.errno,
                f"could not write the checkpoint {filepath}: {e.strerror} (a full disk, or a folder this process "
                "cannot write?). The checkpoints written before it are intact; free space or fix the folder's "
                "permissions, then resume the run in its folder",
            ) from e
        if trainer.is_global_zero:
            os.replace(part, filepath)
        trainer.strategy.barrier("checkpoint_renamed")
        self._last_checkpoint_saved = filepath


class LastCheckpoint(DurableCheckpoint):
    """``last.ckpt`` of every epoch, for resuming; durable (see :class:`DurableCheckpoint`)."""


class RunCheckpoint(DurableCheckpoint):
    """The best epoch's checkpoint: durable, kept until the epoch's last.ckpt names its successor, and, resumed in
    another folder, copied into this run's own.

    Lightning deletes the replaced best as soon as the new one is written, before the epoch's last.ckpt (which
    records which best is current) is; a kill between the two would leave a last.ckpt naming a deleted file.
    Here the replaced best is deleted when the next epoch starts (or training ends), after every checkpoint of
    the epoch is written.

    Lightning restores ``best_model_path`` from the resumed checkpoint even when it lies in the earlier
    run's folder; testing would then read a file this run does not own (and fail if it was deleted). The
    best checkpoint is copied into this run's folder when the state is restored, so the run is complete
    in itself; a best checkpoint that no longer exists stops the resume before any training.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer  # its ckpt_path, while restoring, is the checkpoint being resumed
        self._replaced: list[str] = getattr(self, "_replaced", [])
        if trainer.is_global_zero and self.dirpath and Path(self.dirpath).is_dir():
            for part in Path(self.dirpath).glob("*.part"):  # a write a kill cut short
                part.unlink()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "replaced": list(getattr(self, "_replaced", []))}

    def _remove_checkpoint(self, trainer, filepath: str) -> None:
        self._replaced.append(filepath)  # deleted once the epoch's last.ckpt names its successor

    def _remove_replaced(self, trainer) -> None:
        for path in self._replaced:
            super()._remove_checkpoint(trainer, path)
        self._replaced = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._remove_replaced(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        self._remove_replaced(trainer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # replaced bests the stopped run had yet to delete (it stopped before its next epoch started)
        here = Path(self.dirpath).resolve() if self.dirpath else None  # never another run's folder
        self._replaced = [
            p for p in state_dict.get("replaced", []) if p != self.best_model_path and Path(p).parent.resolve() == here
        ]
        if not self.best_model_path or self.dirpath is None:
            return
        recorded = Path(self.best_model_path)
        resumed = getattr(getattr(self, "_trainer", None), "ckpt_path", None)
        # the same file in this run's own folder (a run folder copied or moved with its checkpoints), the recorded
        # path, or the file beside the resumed checkpoint
        own = Path(self.dirpath) / recorded.name
        candidates = [own, recorded] + ([Path(resumed).parent / recorded.name] if resumed else [])
        best = next((p for p in candidates if p.is_file()), None)
        if best is None:
            raise FileNotFoundError(
                f"the resumed run's best checkpoint {recorded} no longer exists: this run could not test its best "
                "epoch. Restore the file (it is looked for beside the resumed checkpoint too), or start a new run."
            )
        if best.resolve() != own.resolve():
            own.parent.mkdir(parents=True, exist_ok=True)
            copy_atomically(best, own)  # a copy cut short by a full disk leaves nothing half written
            log.info("copied the resumed run's best checkpoint %s into %s", best, own.parent)
        score = state_dict.get("best_model_score")
        self.best_model_path = self.kth_best_model_path = str(own)
        if score is not None:
            self.best_model_score = self.kth_value = score
            self.best_k_models = {str(own): score}
