"""Labels of the tasks a user declares (text and image entries): the fields every entry shares, checked, the
task's head inferred from its training labels, and the labels encoded as the head reads them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.data.base import DataError
from src.data.tasks import METRICS, TaskSpec

KINDS = ("classification", "regression")


@dataclass(frozen=True, kw_only=True)
class LabelledEntry:
    """What every own-task entry holds beside its source (text columns, an image column): its name, label column,
    kind, classes, metrics and splits. Text and image entries extend it."""

    name: str
    label: str = "label"
    kind: str | None = None
    num_labels: int | None = None
    label_names: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    train_split: str = "train"
    test_splits: Mapping[str, str] = field(default_factory=dict)  # test-set name → split ({name: "test"})
    test_fraction: float | None = None
    head: str | None = None  # another task's head to train through (None: its own)


def label_fields(where: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The label and split fields an entry of any own-task group shares (text, images), checked: ``kind``,
    ``num_labels``, ``label_names``, ``metrics``, ``test_fraction`` and ``test_split``."""
    kind = entry.get("kind")
    if kind is not None and kind not in KINDS:
        raise DataError(f"{where}.kind={kind!r}: must be classification or regression (or left out)")
    num_labels = entry.get("num_labels")
    if num_labels is not None and (not isinstance(num_labels, int) or num_labels < 2):
        raise DataError(f"{where}.num_labels={num_labels!r}: must be an integer of at least 2")
    metrics = entry.get("metrics")
    if metrics is not None:
        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise DataError(f"{where}.metrics: {unknown or 'none'} not known; known: {', '.join(METRICS)}")
    test_fraction = entry.get("test_fraction")
    if test_fraction is not None and not 0 < test_fraction < 1:
        raise DataError(f"{where}.test_fraction={test_fraction}: must be in (0, 1)")
    label_names = entry.get("label_names")
    head = entry.get("head")
    if head is not None and (not isinstance(head, str) or head == where.rsplit(".", 1)[-1]):
        raise DataError(f"{where}.head={head!r}: must name another task of the run, whose head this one trains through")
    return {
        "head": head,
        "kind": kind,
        "num_labels": num_labels,
        "label_names": tuple(str(x) for x in label_names) if label_names is not None else None,
        "metrics": metrics,
        "test_fraction": test_fraction,
        "test_split": entry.get("test_split", "test"),
    }


def infer_spec(task: LabelledEntry, labels: Sequence[Any]) -> tuple[TaskSpec, tuple[str, ...] | None]:
    """The task's spec (head size, metrics) and its label names, from the entry and its training labels."""
    where = f"task.tasks.{task.name}"
    strings = any(isinstance(y, str) for y in labels)
    numbers = [y for y in labels if isinstance(y, int | float) and not isinstance(y, bool)]
    kind = task.kind
    if kind is None and strings:  # a numeric column with a stray word reads as strings: refuse to guess
        numeric = [y for y in labels if isinstance(y, str) and _is_number(y)]
        row = next((i for i, y in enumerate(labels) if not (isinstance(y, str) and _is_number(y))), None)
        if len(numeric) > len(labels) / 2 and row is not None:
            raise DataError(
                f"{where}.label: the labels look numeric, but row {row} holds {labels[row]!r}; fix the row, or set "
                "kind (classification or regression) to say what the column is"
            )
    if kind is None:
        fractional = any(isinstance(y, float) and not float(y).is_integer() for y in numbers)
        kind = "regression" if fractional and not strings else "classification"
    if kind == "regression":
        row = next((i for i, y in enumerate(labels) if isinstance(y, str) and not _is_number(y)), None)
        if row is not None:  # numbers written as text (a column with one stray word reads as text) are fine
            raise DataError(f"{where}.label: row {row}: {labels[row]!r} is not a number (kind: regression)")
        metrics = task.metrics or ("pearson", "spearman")
        spec, names = TaskSpec(task.name, 1, metrics, task.head), None
    else:
        ints = [int(y) for y in numbers if float(y).is_integer()]
        present = [y for y in labels if y is not None]
        if task.label_names is not None:
            names = task.label_names
        elif strings:
            names = tuple(sorted({str(y) for y in present}))
        elif present and all(isinstance(y, bool) for y in present):  # True/False: two classes, False first
            names = ("False", "True")
        elif ints and min(ints) > 0 and task.num_labels is None:  # 1-based (star ratings 1–5): the classes seen
            names = tuple(str(v) for v in sorted(set(ints)))
        else:
            names = None
        if names is not None:
            num = len(names)
        else:
            num = task.num_labels or (max(ints) + 1 if ints else 0)
        if task.num_labels is not None and task.num_labels != num:
            given = f"label_names has {num} names" if task.label_names else f"the train split has {num} labels"
            raise DataError(f"{where}.num_labels={task.num_labels}, but {given}")
        if num < 2 and task.label_names is not None:
            held = sorted({label_key(y) for y in present})
            raise DataError(
                f"{where}.label_names={list(task.label_names)}: a classification task needs two classes or more, and "
                f"the train split holds {', '.join(map(repr, held[:6]))}: list every class (their order is the class "
                "ids)"
            )
        if num < 2:
            raise DataError(f"{where}.label: the train split has fewer than two classes; is it a regression task?")
        metrics = task.metrics or ("accuracy",)
        spec = TaskSpec(task.name, num, metrics, task.head)
    for m in spec.metrics:
        if m in ("pearson", "spearman") and not spec.regression or m in ("accuracy", "mcc", "f1") and spec.regression:
            raise DataError(f"{where}.metrics: {m} does not score a {kind} task")
        if m == "f1" and spec.num_outputs != 2:
            raise DataError(f"{where}.metrics: f1 is the positive class's F1 of a binary task; this one has {num}")
    return spec, names


def label_key(y: Any) -> str:
    """A label as its class name: ``True``, ``3`` (whether read as 3 or 3.0), or the text as written."""
    if isinstance(y, bool):
        return str(y)
    if isinstance(y, int | float) and float(y).is_integer():
        return str(int(y))
    return str(y)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def encode_labels(
    task: LabelledEntry, spec: TaskSpec, names: tuple[str, ...] | None, labels: Sequence[Any], where: str
):
    """Labels as the head reads them: class ids (``names`` mapped in order) or finite floats; a bad one is refused."""
    if not spec.regression and labels and all(y == -1 for y in labels):
        raise DataError(
            f"{where}: the split has no labels (every label is -1, as in GLUE's hidden test split); score on a "
            "labelled split"
        )
    out = []
    index = {n: i for i, n in enumerate(names)} if names is not None else None
    for row, y in enumerate(labels):
        if spec.regression:
            y = float(y) if isinstance(y, str) and _is_number(y) else y
            ok = isinstance(y, int | float) and not isinstance(y, bool) and math.isfinite(y)
            if not ok:
                raise DataError(f"{where}: column {task.label!r}, row {row}: {y!r} is not a finite number")
            out.append(float(y))
        elif index is not None:
            if y is None or label_key(y) not in index:
                raise DataError(
                    f"{where}: column {task.label!r}, row {row}: {y!r} is not one of the labels {list(names)}"
                )
            out.append(index[label_key(y)])
        else:
            ok = isinstance(y, int | float) and not isinstance(y, bool) and float(y).is_integer()
            if not ok or not 0 <= int(y) < spec.num_outputs:
                raise DataError(
                    f"{where}: column {task.label!r}, row {row}: {y!r} is not a class in 0..{spec.num_outputs - 1}"
                )
            out.append(int(y))
    return out


def check_split_files(where: str, files: Mapping[str, Sequence[str]]) -> None:
    """Splits read from files: no file serves two splits (the model would be scored on what it trained on), and a
    CSV or TSV has no column name twice (pandas would rename the second copy and read it silently)."""
    import csv

    seen: dict[Path, str] = {}
    for split, paths in files.items():
        for p in paths:
            path = Path(p).expanduser().resolve()
            if path in seen and seen[path] != split:
                raise DataError(
                    f"{where}.data_files: {p} is both the {seen[path]} and the {split} split: the model would be "
                    "scored on rows it trained on. Give the test split its own file, or leave it out and set "
                    "test_fraction to carve one"
                )
            seen[path] = split
            if path.suffix.lower() in (".csv", ".tsv"):
                with open(path, newline="", encoding="utf-8", errors="replace") as f:
                    header = next(csv.reader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","), [])
                if twice := sorted({c for c in header if header.count(c) > 1}):
                    raise DataError(f"{where}.data_files.{split}: {p} names the column(s) {twice} twice; rename one")
