"""Stopping a run on SIGTERM or Ctrl-C in every phase, with what was kept and the commands that continue it.

SIGTERM (Slurm preemption, ``scancel``, a stopped container) while setting up or loading data stops at once;
inside Lightning's loops Lightning's handler notes it and the run stops at the next step, before a checkpoint
of a partial epoch could be written (:meth:`src.module.MultiTaskModule.on_train_batch_end`). Either way the
run exits with status 128 + the signal's number and logs the two commands that continue it.
"""

from __future__ import annotations

import logging
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.checkpoints import last_checkpoint
from src.module import StopRequested

log = logging.getLogger(__name__)


class Preempted(SystemExit):
    """The run received SIGTERM or SIGINT (Ctrl-C) and stopped.

    A ``SystemExit`` with status 128 + the signal's number (143, 130), so it is not caught as a failed job: a
    sequential sweep stops here too, as the process it runs in is being stopped, and a scheduler sees a
    non-zero exit.
    """

    def __init__(self, message: str, code: int = 128 + signal.SIGTERM):
        log.error(message)
        super().__init__(code)


@dataclass
class Phase:
    """Where a run is, for the message of a signal that lands outside Lightning's loops."""

    now: str = "while setting up, before training"


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM outside Lightning's loops stops the run at once; inside them Lightning's handler (which calls
    this one too) notes it and the run stops at the next step, at an epoch boundary for its checkpoints."""
    if signal.getsignal(signal.SIGTERM) is _stop_on_sigterm:
        raise StopRequested("SIGTERM received")


@contextmanager
def stoppable(cfg: DictConfig) -> Iterator[Phase]:
    """The block a run lives in: a signal outside Lightning's loops becomes :class:`Preempted` with the phase."""
    phase = Phase()
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield phase
        return
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        yield phase
    except StopRequested:  # outside Lightning's loops: validating, building, loading data, between fit and test
        raise Preempted(resume_hint(cfg, None, phase.now)) from None
    except KeyboardInterrupt:  # Ctrl-C outside Lightning's loops (inside them Lightning exits 1: see interrupted)
        raise Preempted(resume_hint(cfg, None, phase.now, "SIGINT (Ctrl-C)"), 128 + signal.SIGINT) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def in_lightning(cfg: DictConfig, trainer: pl.Trainer, when: str = "") -> Iterator[None]:
    """Around ``trainer.fit`` or ``trainer.test``: Lightning's own ways of stopping become :class:`Preempted`."""
    try:
        yield
    except (StopRequested, SIGTERMException):  # ours mid-epoch; Lightning's between epochs or in validation
        raise Preempted(resume_hint(cfg, trainer, when)) from None
    except SystemExit:
        # Lightning answers Ctrl-C with sys.exit(1) and SIGINT ignored from then on: status 130 and the resume
        # commands instead, and Ctrl-C works again
        if trainer.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise Preempted(resume_hint(cfg, trainer, when, "SIGINT (Ctrl-C)"), 128 + signal.SIGINT) from None
        raise


_CONTINUED_BY: list[str] = []  # what continues the work a run is part of (a search's command), innermost last


@contextmanager
def continue_with(advice: str) -> Iterator[None]:
    """Runs inside the block are part of larger work (a search's trials): a stopped one gives ``advice`` to
    continue, instead of its own command (which would train it outside that work)."""
    _CONTINUED_BY.append(advice)
    try:
        yield
    finally:
        _CONTINUED_BY.pop()


@contextmanager
def between_runs(advice: str) -> Iterator[None]:
    """Work made of runs (a search): SIGTERM between two of them stops it with ``advice`` (inside a run, the run's
    own handler stops it at the next safe point and says the same, :func:`continue_with`)."""

    def stop(signum: int, frame: Any) -> None:
        raise Preempted(f"stopped by SIGTERM between runs; nothing is lost. {advice}")

    if threading.current_thread() is not threading.main_thread():
        with continue_with(advice):
            yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with continue_with(advice):
            yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_hint(cfg: DictConfig, trainer: pl.Trainer | None, when: str = "", stopped_by: str = "SIGTERM") -> str:
    """What stopped, what is kept, and the two commands that continue the run, quoted so they paste as printed."""
    last = last_checkpoint(cfg)
    where = f"The last checkpoint is {last}" if last.exists() else "No checkpoint was written yet"
    if _CONTINUED_BY:
        return (
            f"stopped by {stopped_by} {when or f'in epoch {trainer.current_epoch}'}; no results.json was written. "
            f"{where}. {_CONTINUED_BY[-1]}"
        )
    kept = [o for o in cfg.launch.overrides if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    command = shlex.join(["python", "-m", "src.run", *kept])
    in_place = shlex.quote(f"hydra.run.dir={cfg.paths.output_dir}")
    return (
        f"stopped by {stopped_by} {when or f'in epoch {trainer.current_epoch}'}; no results.json was written. {where}. "
        f"Continue in this folder with `{command} {in_place}` (ckpt_path=auto finds last.ckpt there; a sweep: run "
        f"it again with hydra.sweep.dir=<its folder>), or in a new one with "
        f"`{command} {shlex.quote(f'ckpt_path={last}')}`"
    )
