"""The GLUE task group from Hugging Face ``datasets``: the Hub (``nyu-mll/glue``) or a local copy.

The source is configuration. ``source: auto`` reads ``<data_dir>/glue`` when that folder exists (a copy
in the Hub's parquet layout, ``<task>/<split>-00000-of-00001.parquet``) and the Hub otherwise; the same
``datasets.load_dataset(source, task)`` call serves both. Splits: the target's dev split is carved from
its GLUE train split; GLUE's validation split is the test set (its test labels are hidden); MNLI is
tested on validation_matched, and validation_mismatched is reported beside it as ``mnli_mm``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import Tensor

from src.data.base import DataError, MultiTaskDataModule, Subset, content_key, seeded_split
from src.data.tasks import TaskSpec

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


TOKENIZER_FILES = ("tokenizer*", "vocab*", "merges*", "special_tokens*", "added_tokens*", "spiece*", "sentencepiece*")


def source_files(source: str, task: str, split: str) -> list[Path]:
    """The local files a split is read from (its parquet shards and the README that declares them)."""
    if not is_local(source):
        return []
    root = Path(source)
    return sorted((root / task).glob(f"{split}-*")) + [p for p in [root / "README.md"] if p.exists()]


def tokenizer_files(tokenizer: str) -> list[Path]:
    """A local tokenizer folder's files (not the model weights); none for a Hub name."""
    folder = Path(tokenizer)
    return sorted({p for pattern in TOKENIZER_FILES for p in folder.glob(pattern)}) if folder.is_dir() else []


def root_cause(error: BaseException) -> str:
    """``Type: message`` of the innermost exception ``error`` was raised from (datasets wraps the real one)."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return f"{type(error).__name__}: {str(error).rstrip('. ')}"


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


def check_rows(ds, spec: TaskSpec, split: str, text: list[str], files: list[Path]) -> None:
    """Refuse what would train or score wrongly without a word, naming the file, the column and a row: a label
    outside the task's classes, a regression label that is not a finite number, a split with no labels (GLUE's
    hidden test labels are -1), an empty or missing text."""
    import math

    where = ", ".join(str(f) for f in files if f.suffix != ".md") or f"GLUE {spec.name} ({split})"
    labels = ds["label"]
    if spec.regression:
        bad = next((i for i, y in enumerate(labels) if not isinstance(y, int | float) or not math.isfinite(y)), None)
        what = "a finite number"
    else:
        if labels and all(y == -1 for y in labels):
            raise DataError(
                f"{where}: the {split} split of {spec.name} has no labels (every label is -1, as in GLUE's hidden "
                "test split); score on a labelled split"
            )
        bad = next((i for i, y in enumerate(labels) if not isinstance(y, int) or not 0 <= y < spec.num_outputs), None)
        what = f"a class in 0..{spec.num_outputs - 1}"
    if bad is not None:
        raise DataError(f"{where}: column 'label', row {bad}: {labels[bad]!r} is not {what}")
    for column in text:
        values = ds[column]
        if (
            row := next((i for i, t in enumerate(values) if not isinstance(t, str) or not t.strip()), None)
        ) is not None:
            raise DataError(f"{where}: column {column!r}, row {row}: the text is empty or missing ({values[row]!r})")


class TextData:
    """Tokenized examples of one split with a padding collator, as a :class:`~src.data.schedule.TaskData`."""

    def __init__(self, dataset, collator):
        self.dataset, self.collator = dataset, collator

    def __len__(self) -> int:
        return len(self.dataset)

    def lengths(self) -> Tensor:
        """Each example's number of tokens (what padding a batch follows)."""
        return torch.tensor([len(ids) for ids in self.dataset["input_ids"]])

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        rows = self.dataset[indices.tolist()]
        features = [dict(zip(rows, values)) for values in zip(*rows.values())]
        return dict(self.collator(features))


class GLUEDataModule(MultiTaskDataModule):
    """GLUE tasks tokenized for an encoder; one head per task (regression for STS-B).

    Args:
        tokenizer: Hub name or folder of the encoder's tokenizer (``model.pretrained``).
        source: ``auto``, a Hub dataset name, or a folder in the Hub's layout.
        data_dir: where ``auto`` looks for ``glue/``.
        cache_dir: tokenized splits are cached here, so a second run does not re-tokenize.
        max_length: truncation length of the tokenizer.
        auxiliaries: a list of task names, or ``auto``: every other GLUE task the source has.
        **kwargs: see :class:`~src.data.base.MultiTaskDataModule`.
    """

    GROUP = "glue"
    INPUTS = "text"
    TASKS = TASKS

    def __init__(
        self,
        tokenizer: str | None,
        source: str = "auto",
        data_dir: str = "data",
        cache_dir: str = ".cache",
        max_length: int = 128,
        auxiliaries: list[str] | str = "auto",
        **kwargs,
    ):
        self.source = resolve_source(source, data_dir)
        target = kwargs["target"]
        if auxiliaries == "auto":
            auxiliaries = [t for t in TASKS if t != target and not missing_splits(self.source, [t])]
        super().__init__(auxiliaries=list(auxiliaries), **kwargs)
        if tokenizer is None:
            raise ValueError("GLUE tasks need an encoder model with a tokenizer: use model=encoder or model=minilm")
        self.tokenizer_name, self.max_length = tokenizer, max_length
        self.cache_dir = Path(cache_dir)
        if is_local(self.source):
            check_local_copy(self.source)
        if missing := missing_splits(self.source, [t.name for t in self.tasks]):
            raise DataError(
                "GLUE data missing from "
                + self.source
                + ": "
                + ", ".join(f"{t} ({s})" for t, s in missing)
                + ". Add the Hub-layout parquet files (<task>/<split>-00000-of-00001.parquet) there, use "
                f"task.source={HUB} with network access, or drop these tasks from task.auxiliaries."
            )

    def test_tasks(self) -> list[str]:
        return [name for t in self.tasks for name in test_splits(t.name)]

    def head_of(self, test_set: str) -> str:
        return next(t.name for t in self.tasks if test_set in test_splits(t.name))

    def _load_split(self, task: str, split: str, tokenizer):
        import datasets

        # Both caches are keyed by the content they were built from (the local parquet files and README, the
        # tokenizer's files), so an edited, truncated or restored file is read afresh, never served stale.
        data_key = content_key(source_files(self.source, task, split), self.source, task, split)
        key = content_key(tokenizer_files(self.tokenizer_name), data_key, self.tokenizer_name, self.max_length)
        path = self.cache_dir / "glue" / f"{task}_{split}_{key}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            hf_cache = self.cache_dir / "hf" / data_key
            ds = datasets.load_dataset(self.source, task, split=split, cache_dir=str(hf_cache))
        except Exception as e:
            files = ", ".join(str(f) for f in source_files(self.source, task, split) if f.suffix != ".md")
            raise DataError(
                f"could not load GLUE {task} ({split}) from {files or self.source}: {root_cause(e)}. "
                "A corrupt or truncated file needs a fresh copy; a local copy must keep the Hub's layout and "
                "columns (with no network, point task.source or ALPHAVIL_DATA_DIR at one)."
            ) from e
        first, second = TEXT[task]
        if missing := [c for c in (first, second, "label") if c is not None and c not in ds.column_names]:
            raise DataError(
                f"GLUE {task} ({split}) from {self.source} lacks the column(s) {missing}; it has {ds.column_names}. "
                "A local copy must keep the Hub's column names."
            )

        check_rows(ds, TASKS[task], split, [c for c in (first, second) if c], source_files(self.source, task, split))

        def encode(rows):
            args = (rows[first],) if second is None else (rows[first], rows[second])
            return tokenizer(*args, truncation=True, max_length=self.max_length)

        keep = ["label"]
        ds = ds.map(
            encode,
            batched=True,
            cache_file_name=str(path),
            load_from_cache_file=True,
            remove_columns=[c for c in ds.column_names if c not in keep],
            desc=f"tokenizing {task}/{split}",
        )
        return ds  # the collator makes float labels float32 (STS-B) and int labels int64

    def load(self):
        from transformers import AutoTokenizer, DataCollatorWithPadding

        from src.models.encoder import load_pretrained

        tokenizer = load_pretrained(
            lambda name: AutoTokenizer.from_pretrained(name, use_fast=True), self.tokenizer_name, "tokenizer"
        )
        collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        train, test = {}, {}
        for spec in self.tasks:
            train[spec.name] = TextData(self._load_split(spec.name, "train", tokenizer), collator)
            for name, split in test_splits(spec.name).items():
                test[name] = TextData(self._load_split(spec.name, split, tokenizer), collator)
        for spec in self.tasks:
            for name in test_splits(spec.name):
                if len(train[spec.name]) < len(test[name]):  # GLUE's train splits are the larger, in every task
                    raise DataError(
                        f"GLUE {spec.name}: its train split has {len(train[spec.name])} rows and its test split "
                        f"({test_splits(spec.name)[name]}) {len(test[name])}: they look swapped; check the file names"
                    )
        full = train[self.target]
        n = len(full)
        dev_idx, train_idx = seeded_split(n, max(1, round(n * self.dev_fraction)), self.seed)
        train[self.target] = Subset(full, train_idx)
        return train, Subset(full, dev_idx), test
