"""Image tasks listed in a CSV or parquet file, declared in configuration (``task=images``).

Each task of ``task.tasks`` names a listing (one row per image) and its columns::

    smiling: {data_files: {train: /data/celeba/train.csv, test: /data/celeba/test.csv}, image: path, label: Smiling}
    young:   {data_files: {train: /data/celeba/train.csv, test: /data/celeba/test.csv}, image: path, label: Young}

Tasks that share a listing and differ in their label column are a multi-attribute set (CelebA's 40 attributes
are 40 entries); a folder of images of your own needs only its CSV. ``image`` is the column of image paths
(relative paths are read from ``root``, default the listing's folder); ``label``, ``kind``, ``num_labels``,
``label_names``, ``metrics``, ``test_split`` and ``test_fraction`` mean what they mean for text tasks
(:mod:`src.data.text`). Images are read with Pillow, converted to grayscale and resized to ``image_size``
(28 for ``model=lenet``), then scaled as MNIST's pixels are; the decoded splits are cached, keyed by the
listings' content and every image file's size and modification time. A missing listing, column or image file,
or a bad label, stops the run before training with the task, the field and the row named.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from src.data.base import DataError, MultiTaskDataModule, Subset, content_key, seeded_split
from src.data.labels import LabelledEntry, check_split_files, encode_labels, infer_spec, label_fields
from src.data.multimnist import ImageData
from src.data.tasks import TaskSpec

log = logging.getLogger(__name__)
LISTINGS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
FIELDS = ("data_files", "image", "root", "label", "kind", "num_labels", "label_names", "metrics", "test_split")
FIELDS += ("test_fraction", "train_split", "head")


@dataclass(frozen=True, kw_only=True)
class ImageTask(LabelledEntry):
    """One entry of ``task.tasks`` for images, checked."""

    data_files: Mapping[str, str]
    image: str = "path"
    root: str | None = None

    @classmethod
    def parse(cls, name: str, entry: Mapping[str, Any]) -> ImageTask:
        where = f"task.tasks.{name}"
        if not isinstance(entry, Mapping):
            raise DataError(f"{where}: must be a mapping of fields ({', '.join(FIELDS)}), got {entry!r}")
        if unknown := sorted(set(entry) - set(FIELDS)):
            raise DataError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        files = dict(entry.get("data_files") or {})
        if not files:
            raise DataError(f"{where}.data_files: name the listing of each split (split → a CSV or parquet file)")
        for split, path in files.items():
            if Path(str(path)).suffix.lower() not in LISTINGS:
                raise DataError(f"{where}.data_files.{split}: {path} is not a listing ({', '.join(LISTINGS)})")
            if not Path(str(path)).expanduser().is_file():
                raise DataError(f"{where}.data_files.{split}: {path} does not exist")
        check_split_files(where, {split: [str(path)] for split, path in files.items()})
        fields = label_fields(where, entry)
        test_split, test_fraction = fields.pop("test_split"), fields["test_fraction"]
        if test_fraction is None and test_split not in files:
            raise DataError(
                f"{where}.data_files has no {test_split!r} split: add its listing, or set test_fraction to carve a "
                "test set from the train split"
            )
        return cls(
            name=name,
            data_files={k: str(v) for k, v in files.items()},
            image=entry.get("image", "path"),
            root=entry.get("root"),
            label=entry.get("label", "label"),
            train_split=entry.get("train_split", "train"),
            test_splits={name: test_split},
            **fields,
        )


def read_listing(task: ImageTask, split: str):
    """The listing of ``split`` as a pandas frame, with the task's columns checked."""
    import pandas as pd

    path = Path(task.data_files[split]).expanduser()
    kind = LISTINGS[path.suffix.lower()]
    try:
        frame = pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except Exception as e:
        raise DataError(f"task.tasks.{task.name}: could not read {path} ({type(e).__name__}: {e})") from e
    if frame.empty:
        raise DataError(f"task.tasks.{task.name} ({split}) from {path} is empty: no rows to train or score on")
    for column, name in ((task.image, "image"), (task.label, "label")):
        if column not in frame.columns:
            raise DataError(
                f"task.tasks.{task.name} ({split}) from {path} lacks the column {column!r} named by its {name} "
                f"field; it has {list(frame.columns)}"
            )
    return frame


def image_paths(task: ImageTask, split: str, frame) -> list[Path]:
    """Each row's image file (relative paths from ``root``, else the listing's folder); a missing one is refused."""
    listing = Path(task.data_files[split]).expanduser()
    root = Path(task.root).expanduser() if task.root else listing.parent
    paths = []
    for row, value in enumerate(frame[task.image].tolist()):
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{listing}: column {task.image!r}, row {row}: no image path ({value!r})")
        path = Path(value).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DataError(f"{listing}: column {task.image!r}, row {row}: the image {path} does not exist")
        paths.append(path)
    return paths


def grayscale(image):
    """An 8-bit grayscale copy of ``image``: 16- and 32-bit integer images scaled to their range (Pillow's own
    conversion clips them to nearly white), images with an alpha channel laid on black (transparent is dark)."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        return Image.fromarray(np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("L")
    return image.convert("L")


def decode(paths: Sequence[Path], size: int, listing: Path) -> torch.Tensor:
    """The images as one uint8 tensor ``[N, size, size]``: grayscale, resized with Pillow."""
    from PIL import Image

    out = torch.empty((len(paths), size, size), dtype=torch.uint8)
    for row, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                pixels = grayscale(image).resize((size, size), Image.BILINEAR)
                out[row] = torch.frombuffer(bytearray(pixels.tobytes()), dtype=torch.uint8).view(size, size)
        except Exception as e:
            raise DataError(f"{listing}: row {row}: the image {path} cannot be read ({type(e).__name__}: {e})") from e
    return out


class ImageTaskGroup(MultiTaskDataModule):
    """Image tasks from ``tasks`` (name → entry, see the module's docstring).

    Args:
        tasks: the entries, by task name.
        image_size: the side images are resized to (28 for ``model=lenet``).
        cache_dir: decoded splits are cached here.
        auxiliaries: a list of task names, or ``auto``: every other task listed.
        **kwargs: see :class:`~src.data.base.MultiTaskDataModule`.
    """

    GROUP = "images"
    INPUTS = "images"

    def __init__(
        self,
        tasks: Mapping[str, Mapping[str, Any]] | None = None,
        image_size: int = 28,
        cache_dir: str = ".cache",
        auxiliaries: Sequence[str] | str = "auto",
        **kwargs: Any,
    ):
        self.entries = {name: ImageTask.parse(name, dict(e)) for name, e in (tasks or {}).items()}
        self.image_size, self.cache_dir = image_size, Path(cache_dir)
        auxiliaries = self.resolve_auxiliaries(
            {"target": kwargs["target"], "auxiliaries": auxiliaries, "tasks": self.entries}
        )
        self.TASKS: dict[str, TaskSpec] = {n: TaskSpec(n, 2) for n in self.entries}
        self.label_names: dict[str, list[str]] = {}
        self._frames: dict[tuple[str, str], Any] = {}
        super().__init__(auxiliaries=list(auxiliaries), **kwargs)
        for name in [self.target, *self.auxiliaries]:
            entry = self.entries[name]
            spec, names = infer_spec(entry, self.frame(entry, entry.train_split)[entry.label].tolist())
            self.TASKS[name] = spec
            if names is not None:
                self.label_names[name] = list(names)

    def frame(self, entry: ImageTask, split: str):
        if (entry.name, split) not in self._frames:
            self._frames[entry.name, split] = read_listing(entry, split)
        return self._frames[entry.name, split]

    def split_data(self, entry: ImageTask, split: str) -> ImageData:
        frame = self.frame(entry, split)
        listing = Path(entry.data_files[split]).expanduser()
        spec, names = self.TASKS[entry.name], self.label_names.get(entry.name)
        values = [None if v != v else v for v in frame[entry.label].tolist()]  # NaN → None: refused by name
        labels = encode_labels(entry, spec, tuple(names) if names else None, values, str(listing))
        paths = image_paths(entry, split, frame)
        stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
        key = content_key([listing], stats, self.image_size)
        self.identity[f"{entry.name}/{split}"] = key
        cache = self.cache_dir / "images" / f"{key}.pt"
        x = None
        if cache.exists():
            try:
                x = torch.load(cache, weights_only=True)
            except Exception as e:  # overwritten or cut short by a kill: rebuilt, not trusted, and said
                log.warning("rebuilding the unreadable image cache %s (%s: %s)", cache, type(e).__name__, e)
        if x is None:
            x = decode(paths, self.image_size, listing)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            torch.save(x, tmp)
            os.replace(tmp, cache)  # whole or absent: a kill while saving breaks no later run
        dtype = torch.float32 if spec.regression else torch.long
        return ImageData(x, torch.tensor(labels, dtype=dtype))

    def load(self):
        train, test = {}, {}
        for spec in self.tasks:
            entry = self.entries[spec.name]
            data = self.split_data(entry, entry.train_split)
            (name, split), *_ = entry.test_splits.items()
            if entry.test_fraction is not None:  # the same test rows whatever the run's seed
                test_rows, train_rows = seeded_split(len(data), max(1, round(len(data) * entry.test_fraction)), 0)
                train[spec.name], test[name] = Subset(data, train_rows), Subset(data, test_rows)
            else:
                train[spec.name], test[name] = data, self.split_data(entry, split)
        full = train[self.target]
        dev_idx, train_idx = seeded_split(len(full), max(1, round(len(full) * self.dev_fraction)), self.seed)
        train[self.target] = Subset(full, train_idx)
        return train, Subset(full, dev_idx), test

    def record(self) -> dict[str, Any]:
        return {"label_names": dict(self.label_names)} if self.label_names else {}
