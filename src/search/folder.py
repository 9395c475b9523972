"""A trial's folder, ``<search>/trials/<point>``: its files, its state and its cost, written and read here alone.

The folder is a run folder of :func:`src.train.train` (results.json, checkpoints/, csv/), plus what the search
writes beside it: ``failed.json`` (the trial crashed: its error), ``stopped.json`` (a strategy will not advance
it), ``segments.json`` (the seconds of each segment it trained, by the epoch it reached, so that a trial
continued over several rungs counts each segment's time once).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from src.files import write_atomically
from src.search.strategies import Point, Trial

log = logging.getLogger(__name__)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class TrialFolder:
    def __init__(self, root: Path, key: str):
        self.key, self.path = key, Path(root) / "trials" / key

    @classmethod
    def every(cls, root: Path) -> list[TrialFolder]:
        """Every trial folder of the search in ``root``, by name."""
        return [cls(root, f.name) for f in sorted((Path(root) / "trials").glob("*")) if f.is_dir()]

    # --- what it holds
    def results(self) -> dict[str, Any]:
        return read_json(self.path / "results.json") or {}

    def failure(self) -> dict[str, Any] | None:
        return read_json(self.path / "failed.json")

    def trained(self) -> bool:
        """Whether anything was trained or recorded here (a record, a checkpoint, a failure), not only begun."""
        return bool(self.results() or self.failure() or (self.path / "checkpoints").is_dir())

    def history(self) -> list[float]:
        return list(self.results().get("dev_history") or [])

    def state(self, full_epochs: int) -> str:
        """``failed``, ``complete`` (trained to the full length), ``stopped`` (a strategy left it), or ``running``."""
        if self.failure():
            return "failed"
        if len(self.history()) >= full_epochs:
            return "complete"
        return "stopped" if read_json(self.path / "stopped.json") is not None else "running"

    def trial(self, point: Point, full_epochs: int) -> Trial:
        """The trial of ``point`` as its folder records it."""
        failed = self.failure()
        return Trial(self.key, dict(point), self.history(), self.state(full_epochs), failed and failed.get("error"))

    def cost(self, full_epochs: int) -> dict[str, Any] | None:
        """What the folder's run spent: ``runs`` (optimizer steps over its full run's, plus a method's own evaluation
        after training, such as a conditional run scoring every weighting), steps, examples, passes, and seconds
        (every segment's); ``None`` before its first results.json."""
        results = self.results()
        if not results:
            return None
        epochs = len(results.get("epoch_seconds") or [])
        steps = int(results.get("optimizer_steps") or 0)
        full = steps / epochs * full_epochs if epochs else 0
        evaluation = float((results.get("conditional") or {}).get("runs") or 0.0)
        return {
            "runs": (steps / full if full else 0.0) + evaluation,
            "epochs": epochs,
            "optimizer_steps": steps,
            "examples": sum((results.get("examples_seen") or {}).values()),
            "passes": results.get("passes") or {},
            "wall_seconds": sum((read_json(self.path / "segments.json") or {}).values()),
        }

    # --- what the search writes
    def fail(self, error: str, epochs: int | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path / "failed.json", json.dumps({"error": error, "epochs": epochs}))

    def stop(self, epochs: int) -> bool:
        """Mark the trial stopped at ``epochs``; ``False`` if it was already."""
        if (self.path / "stopped.json").exists():
            return False
        write_atomically(self.path / "stopped.json", json.dumps({"epochs": epochs}))
        return True

    def add_segment(self, results: dict[str, Any], epochs: int) -> None:
        """Count the seconds of the segment that brought the trial to ``epochs`` (once: a finished run read again
        adds nothing)."""
        segments = read_json(self.path / "segments.json") or {}
        if results.get("epochs") == epochs and str(epochs) not in segments:
            segments[str(epochs)] = results.get("wall_seconds") or 0.0
            write_atomically(self.path / "segments.json", json.dumps(segments))

    def start_clean(self) -> None:
        """A trial killed while its first checkpoints were written holds nothing to continue from, and the search
        owns the folder: it starts again (its cost is what its results.json records, so nothing counts twice)."""
        checkpoints = self.path / "checkpoints"
        if checkpoints.is_dir() and not (checkpoints / "last.ckpt").exists():
            log.warning("search: %s holds no last.ckpt to continue from; the trial starts again", checkpoints)
            shutil.rmtree(checkpoints)

    def row(self, point: Point | None, full_epochs: int) -> dict[str, Any]:
        """The trial as search.json lists it."""
        results, failed = self.results(), self.failure()
        return {
            "key": self.key,
            "point": point,
            "weights": results.get("weights"),
            "batching": results.get("schedule"),
            "epochs": len(results.get("dev_history") or []),
            "dev_history": results.get("dev_history") or [],
            "dev": results.get("target_dev"),
            "test": results.get("target_test"),
            "state": self.state(full_epochs),
            "error": failed.get("error") if failed else None,
            **(self.cost(full_epochs) or {}),
        }
