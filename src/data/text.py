"""Text tasks declared in configuration: any dataset ``datasets`` reads, as target or auxiliary.

``task=text`` (or a task YAML of your own that includes it, ``/task/text@task``) trains any mix of the tasks
listed under ``task.tasks``. Each entry names its source and its fields::

    stars: {data_files: {train: /data/stars_train.csv, test: /data/stars_test.csv}, text: [review], label: stars}
    topic: {path: ag_news, text: [text], label: label}

- ``path``: a Hub dataset name or a local folder (``datasets.load_dataset(path, name)``); or ``data_files``:
  split → a file or a list of files, read by extension (``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.parquet``).
- ``text``: one column, or two for sentence pairs; ``label``: the label column.
- ``kind``: ``classification`` or ``regression``; inferred when left out (strings and integers classify,
  other numbers regress). ``num_labels``: inferred: integer labels 0..max; the classes seen when the labels
  start above 0 (1-based ratings); True/False as two classes; string labels as ids in sorted order. Classes
  taken from the labels seen are recorded in results.json under ``label_names``; ``label_names`` fixes the
  order by hand.
- ``metrics``: from :data:`src.data.tasks.METRICS`; defaults ``[accuracy]`` (classification) and
  ``[pearson, spearman]`` (regression). The first metrics' mean is the headline, as in GLUE.
- ``head``: another task of the run whose head this one trains through, instead of a head of its own (it must
  have as many outputs): a control whose labels contradict that task's reaches every parameter that task uses.
- ``train_split`` (default ``train``) and ``test_split`` (default ``test``); a source without a test split
  takes ``test_fraction`` of the train split as its test set (the same rows for every seed). The target's dev
  split is carved from what remains of its train split, as everywhere.

Bad input stops before training with the task and the field named (a missing file or column, a label
outside ``num_labels``, a regression label that is not a finite number, an empty text, an empty split, a Hub
name out of reach). No row is dropped. GLUE (:mod:`src.data.glue`) is this group with its nine tasks as
presets: one code path loads, checks, tokenizes and caches every text task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from src.data.base import DataError, MultiTaskDataModule, Subset, content_key, seeded_split
from src.data.labels import LabelledEntry, check_split_files, encode_labels, infer_spec, label_fields
from src.data.tasks import TaskSpec

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
FIELDS = (
    "path",
    "name",
    "data_files",
    "text",
    "label",
    "kind",
    "num_labels",
    "label_names",
    "metrics",
    "train_split",
    "test_split",
    "test_fraction",
    "head",
)
TOKENIZER_FILES = ("tokenizer*", "vocab*", "merges*", "special_tokens*", "added_tokens*", "spiece*", "sentencepiece*")


@dataclass(frozen=True, kw_only=True)
class TextTask(LabelledEntry):
    """One entry of ``task.tasks``, checked (see the module's docstring for each field)."""

    text: tuple[str, ...]
    path: str | None = None
    config_name: str | None = None
    data_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, entry: Mapping[str, Any]) -> TextTask:
        """The entry ``task.tasks.<name>``, with every field checked and its error naming the task and field."""
        where = f"task.tasks.{name}"
        if not isinstance(entry, Mapping):
            raise DataError(f"{where}: must be a mapping of fields ({', '.join(FIELDS)}), got {entry!r}")
        if unknown := sorted(set(entry) - set(FIELDS)):
            raise DataError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        text = entry.get("text")
        text = (text,) if isinstance(text, str) else tuple(text or ())
        if not 1 <= len(text) <= 2 or not all(isinstance(t, str) and t for t in text):
            raise DataError(f"{where}.text: one column, or two for sentence pairs (got {entry.get('text')!r})")
        given = entry.get("data_files") or {}
        files = {split: (f,) if isinstance(f, str) else tuple(f) for split, f in given.items()}
        if not entry.get("path") and not files:
            raise DataError(f"{where}: needs a path (a Hub dataset or a folder) or data_files (split → file)")
        for split, paths in files.items():
            for p in paths:
                if Path(p).suffix.lower() not in FORMATS:
                    raise DataError(
                        f"{where}.data_files.{split}: {p} is not a file datasets reads by extension "
                        f"({', '.join(FORMATS)})"
                    )
                if not Path(p).expanduser().is_file():
                    raise DataError(f"{where}.data_files.{split}: {p} does not exist")
            if len({FORMATS[Path(p).suffix.lower()] for p in paths}) > 1:
                raise DataError(f"{where}.data_files.{split}: the files mix formats ({', '.join(paths)})")
        check_split_files(where, files)
        fields = label_fields(where, entry)
        return cls(
            name=name,
            text=text,
            label=entry.get("label", "label"),
            path=entry.get("path"),
            config_name=entry.get("name"),
            data_files=files,
            train_split=entry.get("train_split", "train"),
            test_splits={name: fields.pop("test_split")},
            **fields,
        )


def read_split(task: TextTask, split: str, cache_dir: Path, what: str | None = None, files: Sequence[Path] = ()):
    """The raw ``split`` of ``task`` as a ``datasets.Dataset`` (no tokenization); errors name it as ``what`` and
    name the ``files`` it is read from (GLUE's parquet shards), else its data files or path."""
    import datasets

    source = ", ".join(task.data_files[split]) if task.data_files else task.path
    source = ", ".join(str(f) for f in files) if files else source
    what = what or f"task.tasks.{task.name}"
    try:
        if task.data_files:
            files = [str(Path(f).expanduser()) for f in task.data_files[split]]
            suffix = Path(files[0]).suffix.lower()
            extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
            ds = datasets.load_dataset(
                FORMATS[suffix], data_files={split: files}, split=split, cache_dir=str(cache_dir), **extra
            )
        else:
            ds = datasets.load_dataset(task.path, task.config_name, split=split, cache_dir=str(cache_dir))
    except Exception as e:
        hub = not task.data_files and not Path(str(task.path)).expanduser().exists()
        how = (
            "A Hub dataset needs the network or its local cache; offline, point path at a local copy (a folder) or "
            "give data_files"
            if hub
            else "A corrupt or truncated file needs a fresh copy"
        )
        raise DataError(f"could not load {what} ({split}) from {source}: {root_cause(e)}. {how}.") from e
    if len(ds) == 0:
        raise DataError(f"{what} ({split}) from {source} is empty: no rows to train or score on")
    if missing := [c for c in (*task.text, task.label) if c not in ds.column_names]:
        field_of = {task.label: "label", **{c: "text" for c in task.text}}
        raise DataError(
            f"{what} ({split}) from {source} lacks the column(s) {missing} named by its {field_of[missing[0]]} "
            f"field; it has {ds.column_names}"
        )
    return ds


def root_cause(error: BaseException) -> str:
    """``Type: message`` of the innermost exception ``error`` was raised from (datasets wraps the real one)."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return f"{type(error).__name__}: {str(error).rstrip('. ')}"


def check_text(ds, task: TextTask, where: str) -> None:
    for column in task.text:
        values = ds[column]
        row = next((i for i, t in enumerate(values) if not isinstance(t, str) or not t.strip()), None)
        if row is not None:
            raise DataError(f"{where}: column {column!r}, row {row}: the text is empty or missing ({values[row]!r})")


def tokenizer_files(tokenizer: str) -> list[Path]:
    """A local tokenizer folder's files (not the model weights); none for a Hub name."""
    folder = Path(tokenizer)
    return sorted({p for pattern in TOKENIZER_FILES for p in folder.glob(pattern)}) if folder.is_dir() else []


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


class TextTaskGroup(MultiTaskDataModule):
    """Text tasks from ``tasks`` (name → entry, see the module's docstring), tokenized for an encoder.

    Args:
        tasks: the entries, by task name.
        tokenizer: Hub name or folder of the encoder's tokenizer (``model.pretrained``).
        cache_dir: tokenized splits are cached here, keyed by their content.
        max_length: truncation length of the tokenizer.
        auxiliaries: a list of task names, or ``auto``: every other task listed.
        **kwargs: see :class:`~src.data.base.MultiTaskDataModule`.
    """

    GROUP = "text"
    INPUTS = "text"
    CACHE = "text"  # the cache's subfolder

    def __init__(
        self,
        tokenizer: str | None,
        tasks: Mapping[str, Mapping[str, Any]] | None = None,
        cache_dir: str = ".cache",
        max_length: int = 128,
        auxiliaries: Sequence[str] | str = "auto",
        **kwargs: Any,
    ):
        if tokenizer is None:
            raise ValueError("text tasks need an encoder model with a tokenizer: use model=encoder or model=minilm")
        self.entries = self.parse_entries(tasks)
        self.tokenizer_name, self.max_length, self.cache_dir = tokenizer, max_length, Path(cache_dir)
        target = kwargs["target"]
        auxiliaries = self.resolve_auxiliaries({"target": target, "auxiliaries": auxiliaries, "tasks": self.entries})
        self.label_names: dict[str, list[str]] = {}
        self._raw: dict[tuple[str, str], Any] = {}
        # every task the group offers; a training task's spec (head size, metrics) follows from its labels below
        self.TASKS: dict[str, TaskSpec] = {n: TaskSpec(n, 2) for n in self.entries}
        super().__init__(auxiliaries=list(auxiliaries), **kwargs)
        for name in [self.target, *self.auxiliaries]:
            entry = self.entries[name]
            train = self.raw(entry, entry.train_split)
            spec, names = infer_spec(entry, train[entry.label])
            self.TASKS[name] = spec
            if names is not None:
                self.label_names[name] = list(names)

    def parse_entries(self, tasks: Mapping[str, Mapping[str, Any]] | None) -> dict[str, TextTask]:
        """The entries this group trains from, checked: ``tasks`` here; GLUE adds its presets."""
        return {name: TextTask.parse(name, dict(entry)) for name, entry in (tasks or {}).items()}

    def raw(self, entry: TextTask, split: str):
        if (entry.name, split) not in self._raw:
            # datasets' own cache, keyed by the files' content: an edited, truncated or restored file is read afresh
            hf_cache = self.cache_dir / "hf" / content_key(self.source_files(entry, split), repr(entry), split)
            files = [f for f in self.source_files(entry, split) if f.suffix != ".md"]
            self._raw[entry.name, split] = read_split(entry, split, hf_cache, self.describe(entry), files)
        return self._raw[entry.name, split]

    def describe(self, entry: TextTask) -> str:
        """How errors name a task."""
        return f"task.tasks.{entry.name}"

    def source_files(self, entry: TextTask, split: str) -> list[Path]:
        """The local files a split is read from (for the cache keys): its data files, or a local folder's files."""
        if entry.data_files:
            return [Path(f).expanduser() for f in entry.data_files.get(split, ())]
        folder = Path(str(entry.path)).expanduser()
        return (
            sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts) if folder.is_dir() else []
        )

    def test_tasks(self) -> list[str]:
        return [name for t in self.tasks for name in self.entries[t.name].test_splits]

    def head_of(self, test_set: str) -> str:
        return next(t.name for t in self.tasks if test_set in self.entries[t.name].test_splits)

    def tokenized(self, entry: TextTask, split: str, tokenizer, rows: Tensor | None = None):
        """``split`` of ``entry`` (its ``rows`` only, when given), checked, labels encoded, tokenized and cached."""
        ds = self.raw(entry, split)
        where = ", ".join(str(f) for f in self.source_files(entry, split) if f.suffix != ".md")
        where = where or f"{entry.path} ({entry.config_name or ''}{'/' if entry.config_name else ''}{split})"
        spec, names = self.TASKS[entry.name], self.label_names.get(entry.name)
        check_text(ds, entry, where)  # on the whole split: a row is named as it is in the file
        labels = encode_labels(entry, spec, tuple(names) if names else None, ds[entry.label], where)
        if rows is not None:
            ds, labels = ds.select(rows.tolist()), [labels[i] for i in rows.tolist()]
        picked = None if rows is None else rows.tolist()
        encoding = (spec.num_outputs, spec.metrics, names)  # a class added to train changes every split's ids
        data_key = content_key(self.source_files(entry, split), repr(entry), split, picked, encoding)
        self.identity[f"{entry.name}/{split}"] = data_key
        key = content_key(tokenizer_files(self.tokenizer_name), data_key, self.tokenizer_name, self.max_length)
        path = self.cache_dir / self.CACHE / f"{entry.name}_{split}_{key}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        first, *second = entry.text
        max_length = self.max_length  # not `self` in the closure: nothing of the module's state is hashed or pickled

        def encode(batch):
            args = (batch[first],) if not second else (batch[first], batch[second[0]])
            return tokenizer(*args, truncation=True, max_length=max_length)

        ds = ds.remove_columns([c for c in ds.column_names if c not in entry.text]).add_column("label", labels)

        def tokenize(from_cache: bool):
            return ds.map(
                encode,
                batched=True,
                cache_file_name=str(path),
                load_from_cache_file=from_cache,
                # the content key names the result; without it `datasets` fingerprints `encode` by hashing its
                # closure (the tokenizer) with dill, seconds a split on two cores
                new_fingerprint=key,
                remove_columns=list(entry.text),
                desc=f"tokenizing {entry.name}/{split}",
            )

        try:
            return tokenize(from_cache=True)
        except Exception as e:  # a cache overwritten or cut short: rebuilt, not trusted, and said
            if not path.exists():
                raise
            log.warning("rebuilding the unreadable token cache %s (%s: %s)", path, type(e).__name__, e)
            path.unlink()
            return tokenize(from_cache=False)

    def load(self):
        from transformers import AutoTokenizer, DataCollatorWithPadding

        from src.models.encoder import load_pretrained

        tokenizer = load_pretrained(
            lambda name: AutoTokenizer.from_pretrained(name, use_fast=True), self.tokenizer_name, "tokenizer"
        )
        collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")
        train, test = {}, {}
        for spec in self.tasks:
            entry = self.entries[spec.name]
            full = len(self.raw(entry, entry.train_split))
            carve = self.carves_test(entry)
            # the same test rows whatever the run's seed: seeds differ in training, never in what they are scored on
            test_rows, train_rows = seeded_split(full, max(1, round(full * (entry.test_fraction or 0))), 0)
            if carve:
                train[spec.name] = TextData(self.tokenized(entry, entry.train_split, tokenizer, train_rows), collator)
                (name,) = entry.test_splits
                test[name] = TextData(self.tokenized(entry, entry.train_split, tokenizer, test_rows), collator)
            else:
                train[spec.name] = TextData(self.tokenized(entry, entry.train_split, tokenizer), collator)
                for name, split in entry.test_splits.items():
                    test[name] = TextData(self.tokenized(entry, split, tokenizer), collator)
        self.check_loaded(train, test)
        full = train[self.target]
        dev_idx, train_idx = seeded_split(len(full), max(1, round(len(full) * self.dev_fraction)), self.seed)
        train[self.target] = Subset(full, train_idx)
        return train, Subset(full, dev_idx), test

    def carves_test(self, entry: TextTask) -> bool:
        """Whether ``entry``'s test set is carved from its train split (``test_fraction``, no test split of its own)."""
        if entry.test_fraction is None:
            if entry.data_files and not all(s in entry.data_files for s in entry.test_splits.values()):
                missing = [s for s in entry.test_splits.values() if s not in entry.data_files]
                raise DataError(
                    f"task.tasks.{entry.name}.data_files has no {missing[0]!r} split: add one, or set "
                    f"test_fraction to carve a test set from its {entry.train_split} split"
                )
            return False
        return True

    def check_loaded(self, train: Mapping[str, Any], test: Mapping[str, Any]) -> None:
        """A hook for checks across a group's loaded splits (GLUE: train and test swapped)."""

    def record(self) -> dict[str, Any]:
        """What results.json records about the tasks: string labels' order, per task."""
        return {"label_names": dict(self.label_names)} if self.label_names else {}
