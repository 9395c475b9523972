"""The GLUE task group from Hugging Face ``datasets``: the Hub (``nyu-mll/glue``) or a local copy.

The source is configuration. ``source: auto`` reads ``<data_dir>/glue`` when that folder exists (a copy
in the Hub's parquet layout, ``<task>/<split>-00000-of-00001.parquet``) and the Hub otherwise; the same
``datasets.load_dataset(source, task)`` call serves both. GLUE is the text task group
(:mod:`src.data.text`) with its nine tasks as presets (:func:`preset`): one code path loads, checks, tokenizes
and caches them, and a task of your own (``task.tasks.<name>``) trains beside them. Splits: the target's dev
split is carved from its GLUE train split; GLUE's validation split is the test set (its test labels are hidden); MNLI is
tested on validation_matched, and validation_mismatched is reported beside it as ``mnli_mm``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.data.base import DataError
from src.data.tasks import TaskSpec
from src.data.text import TextTask, TextTaskGroup

log = logging.getLogger(__name__)

HUB = "nyu-mll/glue"
TASKS = {
    "cola": TaskSpec("cola", 2, ("mcc",)),
    "sst2": TaskSpec("sst2", 2, ("accuracy",)),
    "mrpc": TaskSpec("mrpc", 2, ("f1", "accuracy")),
    "qqp": TaskSpec("qqp", 2, ("f1", "accuracy")),
    "stsb": TaskSpec("stsb", 1, ("pearson", "spearman")),
    "mnli": TaskSpec("mnli", 3, ("accuracy",)),
    "qnli": TaskSpec("qnli", 2, ("accuracy",)),
    "rte": TaskSpec("rte", 2, ("accuracy",)),
    "wnli": TaskSpec("wnli", 2, ("accuracy",)),
}
TEXT = {  # the columns holding each task's text (one sentence or a pair)
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
TEST_SPLITS = {"mnli": {"mnli": "validation_matched", "mnli_mm": "validation_mismatched"}}


def test_splits(task: str) -> dict[str, str]:
    """Test-set name → GLUE split used as that test set."""
    return TEST_SPLITS.get(task, {task: "validation"})


def resolve_source(source: str, data_dir: str | Path) -> str:
    """``auto``: the local copy ``<data_dir>/glue`` when it exists, else the Hub."""
    if source != "auto":
        return source
    local = Path(data_dir) / "glue"
    return str(local) if local.is_dir() else HUB


def is_local(source: str) -> bool:
    return Path(source).is_dir()


def available(source: str, task: str, split: str) -> bool:
    """Whether ``split`` of ``task`` can be loaded (always assumed for the Hub; checked on disk otherwise)."""
    return not is_local(source) or any((Path(source) / task).glob(f"{split}-*"))


def missing_splits(source: str, tasks: list[str]) -> list[tuple[str, str]]:
    needed = [(t, "train") for t in tasks] + [(t, s) for t in tasks for s in test_splits(t).values()]
    return [(t, s) for t, s in needed if not available(source, t, s)]


def source_files(source: str, task: str, split: str) -> list[Path]:
    """The local files a split is read from (its parquet shards and the README that declares them)."""
    if not is_local(source):
        return []
    root = Path(source)
    return sorted((root / task).glob(f"{split}-*")) + [p for p in [root / "README.md"] if p.exists()]


def check_local_copy(source: str) -> None:
    """A local copy is read through its README's ``configs:`` block (one config per task); refuse one without it."""
    readme = Path(source) / "README.md"
    text = readme.read_text(errors="replace") if readme.exists() else ""
    if "configs:" not in text:
        raise DataError(
            f"the local GLUE copy {source} has no README.md with a `configs:` block: datasets needs it to find "
            "each task's files (config_name: <task>, data_files: <task>/<split>-*). Copy the Hub's README.md "
            "(nyu-mll/glue) beside the task folders."
        )
    # datasets resolves every config's files when it reads any one of them: a folder the README names that is
    # gone fails the load of an intact task, and its error names neither
    listed = re.findall(r"^\s*path:\s*([^\s/]+)/", text, re.M)
    if gone := sorted({d for d in listed if not (Path(source) / d).is_dir()}):
        raise DataError(
            f"{readme} names folders that are not in {source}: {', '.join(gone)}. Restore them, or remove their "
            "entries from the README's configs: block"
        )


def preset(task: str, source: str) -> TextTask:
    """GLUE ``task`` as an entry of the text task group: its columns, head, metrics and test splits."""
    spec = TASKS[task]
    return TextTask(
        name=task,
        text=tuple(c for c in TEXT[task] if c),
        label="label",
        path=source,
        config_name=task,
        kind="regression" if spec.regression else "classification",
        num_labels=None if spec.regression else spec.num_outputs,
        metrics=spec.metrics,
        test_splits=test_splits(task),
    )


class GLUEDataModule(TextTaskGroup):
    """GLUE tasks tokenized for an encoder; one head per task (regression for STS-B).

    Args:
        tokenizer: Hub name or folder of the encoder's tokenizer (``model.pretrained``).
        source: ``auto``, a Hub dataset name, or a folder in the Hub's layout.
        data_dir: where ``auto`` looks for ``glue/``.
        cache_dir: tokenized splits are cached here, so a second run does not re-tokenize.
        max_length: truncation length of the tokenizer.
        auxiliaries: a list of task names, or ``auto``: every other GLUE task the source has.
        tasks: tasks of your own beside GLUE's (entries of the text task group, :mod:`src.data.text`).
        **kwargs: see :class:`~src.data.base.MultiTaskDataModule`.
    """

    GROUP = "glue"
    CACHE = "glue"
    TASKS = TASKS  # the group's tasks before any instance (config checks); an instance adds its own tasks

    def __init__(
        self,
        tokenizer: str | None,
        source: str = "auto",
        data_dir: str = "data",
        cache_dir: str = ".cache",
        max_length: int = 128,
        auxiliaries: list[str] | str = "auto",
        tasks: dict | None = None,
        **kwargs,
    ):
        self.source = resolve_source(source, data_dir)
        target = kwargs["target"]
        own = dict(tasks or {})
        if clash := sorted(set(own) & set(TASKS)):
            raise DataError(f"task.tasks names {', '.join(clash)}, a GLUE task already: give your task another name")
        auxiliaries = self.resolve_auxiliaries(
            {"target": target, "auxiliaries": auxiliaries, "tasks": own, "source": self.source}
        )
        glue = [t for t in [target, *auxiliaries] if t in TASKS]
        if is_local(self.source) and any(t in TASKS for t in glue):
            check_local_copy(self.source)
        if missing := missing_splits(self.source, [t for t in glue if t in TASKS]):
            raise DataError(
                "GLUE data missing from "
                + self.source
                + ": "
                + ", ".join(f"{t} ({s})" for t, s in missing)
                + ". Add the Hub-layout parquet files (<task>/<split>-00000-of-00001.parquet) there, use "
                f"task.source={HUB} with network access, or drop these tasks from task.auxiliaries."
            )
        super().__init__(tokenizer, own, cache_dir, max_length, auxiliaries, **kwargs)

    @classmethod
    def resolve_auxiliaries(cls, task: Mapping[str, Any]) -> list[str]:
        """``auto``: every other GLUE task the source holds (WNLI only when named), then the tasks of your own."""
        if task.get("auxiliaries", "auto") != "auto":
            return list(task["auxiliaries"])
        source = resolve_source(task.get("source", "auto"), task.get("data_dir", "data"))
        others = [t for t in TASKS if t not in (task["target"], "wnli")]
        own = [t for t in (task.get("tasks") or {}) if t != task["target"]]
        return [t for t in others if not missing_splits(source, [t])] + own

    def parse_entries(self, tasks):
        return {**{t: preset(t, self.source) for t in TASKS}, **super().parse_entries(tasks)}

    def describe(self, entry: TextTask) -> str:
        return f"GLUE {entry.name}" if entry.name in TASKS else super().describe(entry)

    def source_files(self, entry: TextTask, split: str):
        if entry.name in TASKS:
            return source_files(self.source, entry.name, split)
        return super().source_files(entry, split)

    def check_loaded(self, train, test) -> None:
        for spec in self.tasks:
            if spec.name not in TASKS:
                continue
            for name in test_splits(spec.name):
                if len(train[spec.name]) < len(test[name]):  # GLUE's train splits are the larger, in every task
                    raise DataError(
                        f"GLUE {spec.name}: its train split has {len(train[spec.name])} rows and its test split "
                        f"({test_splits(spec.name)[name]}) {len(test[name])}: they look swapped; check the file names"
                    )
