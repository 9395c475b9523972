"""MultiMNIST (Sener & Koltun, NeurIPS 2018): two overlapping MNIST digits, one task per digit.

Each image is an MNIST digit in the top-left corner and a random partner digit in the bottom-right
corner of a 36×36 canvas (left at [0:28, 0:28], right at [6:34, 6:34], pixel-wise max), resized to
28×28. Tasks: ``left`` and ``right`` (10 classes each); coarser labels of the left digit, auxiliaries
that carry part of the left target's answer and so can help a left target with little data of its own:
``left_coarse`` (the digit's pair, ``left // 2``: 5 classes) and ``left_parity`` (odd or even: 2 classes);
and ``noise``: labels drawn uniformly at random, a task that cannot help any other, for
negative-transfer experiments.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
import urllib.request
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from src.data.base import DataError, MultiTaskDataModule, Subset, content_key, seeded_split
from src.data.tasks import TaskSpec

log = logging.getLogger(__name__)

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's primary mirror
    "http://yann.lecun.com/exdb/mnist/",
)
FILES = {  # name -> md5 of the official gzip file
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MEAN, STD = 0.1307, 0.3081  # MNIST pixel statistics, the usual normalisation
CACHE_VERSION = 1  # bump when the construction changes, so old caches are not reused


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file into an array, checking the header against the payload size."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for truncated or non-gzip files
        raise DataError(
            f"cannot read {path}: {e}. The file is corrupt or truncated; delete it and provide a fresh copy."
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header is incomplete")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path} has {len(raw)} bytes but its header {shape} needs {expected}: the file is corrupt or truncated"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_mnist(root: Path, download: bool = True, verify: bool = True) -> Path:
    """The folder holding the four MNIST files, downloading any that are missing when allowed."""
    folder = root / "mnist"
    for name, digest in FILES.items():
        path = folder / name
        if not path.exists() and download:
            _download(name, path)
        if not path.exists():
            raise DataError(
                f"MNIST file {name} not found in {folder} and could not be downloaded. Put the four "
                f"official files ({', '.join(FILES)}) in {folder}, or point ALPHAVIL_DATA_DIR "
                "(paths.data_dir) at a folder whose mnist/ holds them."
            )
        if verify and (actual := md5(path)) != digest:
            other = next((n for n, d in FILES.items() if d == actual), None)
            if other is not None:  # an intact official file under another's name (train and test swapped)
                raise DataError(
                    f"{path} is the official {other}, not {name} (its md5 is {other}'s): the files' names are "
                    f"swapped; rename them so that {name} holds {name}."
                )
            raise DataError(
                f"{path} has md5 {actual}, expected {digest}: the file is corrupt or "
                "truncated. Delete it and provide a fresh copy."
            )
    return folder


def _download(name: str, path: Path) -> None:
    for mirror in MIRRORS:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            with urllib.request.urlopen(mirror + name, timeout=30) as r, open(tmp, "wb") as f:
                f.write(r.read())
            os.replace(tmp, path)
            log.info("downloaded %s from %s", name, mirror)
            return
        except OSError as e:
            log.warning("could not download %s from %s: %s", name, mirror, e)


def compose(images: np.ndarray, partner: np.ndarray) -> Tensor:
    """MultiMNIST images (uint8, N×28×28) from digits and the index of each one's partner."""
    x = torch.from_numpy(np.array(images))  # a writable copy
    canvas = torch.zeros(len(x), 36, 36, dtype=torch.uint8)
    canvas[:, 0:28, 0:28] = x
    canvas[:, 6:34, 6:34] = torch.maximum(canvas[:, 6:34, 6:34], x[partner])
    small = F.interpolate(canvas[:, None].float(), size=(28, 28), mode="bilinear", antialias=True)
    return small[:, 0].round().clamp(0, 255).to(torch.uint8)


def build_split(folder: Path, split: str, seed: int) -> dict[str, Tensor]:
    """Images and ``left``/``right``/``noise`` labels of one MNIST split, made from a seeded pairing."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(
            f"MNIST {split} files in {folder} have shapes {images.shape} and {labels.shape}; "
            "expected N×28×28 images and N labels"
        )
    g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    partner = torch.randint(len(images), (len(images),), generator=g).numpy()
    y = torch.from_numpy(labels.astype(np.int64))
    return {
        "x": compose(images, partner),
        "left": y,
        "right": y[partner],
        "noise": torch.randint(10, (len(images),), generator=g),
        "partner": torch.from_numpy(partner),
    }


DERIVED = {"left_coarse": lambda s: s["left"] // 2, "left_parity": lambda s: s["left"] % 2}


def labels(split: dict[str, Tensor], task: str) -> Tensor:
    """A task's labels in a built split: stored (left, right, noise) or derived from them (:data:`DERIVED`)."""
    return DERIVED[task](split) if task in DERIVED else split[task]


class ImageData:
    """Images with one task's labels, as a :class:`~src.data.schedule.TaskData`."""

    def __init__(self, x: Tensor, labels: Tensor):
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        x = (self.x[indices].float() / 255.0 - MEAN) / STD
        return {"x": x[:, None], "labels": self.labels[indices]}


def remove_stale_parts(folder: Path) -> None:
    """Delete the ``<name>.<pid>.tmp`` files of writers that no longer run (a kill while saving a cache)."""
    for tmp in folder.glob("*.tmp"):
        pid = tmp.suffixes[-2][1:] if len(tmp.suffixes) >= 2 else ""
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)
            log.info("removed %s, left by a writer that no longer runs", tmp)


class MultiMNISTDataModule(MultiTaskDataModule):
    """MultiMNIST from the four MNIST IDX files under ``<data_dir>/mnist``.

    Built once per seed and cached under ``cache_dir``, keyed by the IDX files' content. The dev split is
    carved from MNIST train and removed from every task's training data, since the tasks share their images.

    Args:
        data_dir: folder whose ``mnist/`` holds the IDX files (downloaded there if missing).
        cache_dir: where the constructed images are cached.
        download: try the MNIST mirrors when a file is missing.
        verify_checksums: check the official md5 of each file (off for hand-made fixtures).
        **kwargs: see :class:`~src.data.base.MultiTaskDataModule`.
    """

    GROUP = "multimnist"
    INPUTS = "images"
    TASKS = {
        "left": TaskSpec("left", 10),
        "right": TaskSpec("right", 10),
        "left_coarse": TaskSpec("left_coarse", 5),
        "left_parity": TaskSpec("left_parity", 2),
        "noise": TaskSpec("noise", 10),
    }

    def __init__(self, data_dir: str, cache_dir: str, download: bool = True, verify_checksums: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.data_dir, self.cache_dir = Path(data_dir), Path(cache_dir)
        self.download, self.verify_checksums = download, verify_checksums

    def split(self, split: str) -> dict[str, Tensor]:
        folder = ensure_mnist(self.data_dir, self.download, self.verify_checksums)
        # keyed by the files' content, not their path: an edited or replaced file is never served from an old
        # cache, checksums verified or not
        key = content_key((folder / name for name in FILES), CACHE_VERSION)
        self.identity[f"mnist/{split}"] = key
        path = self.cache_dir / "multimnist" / f"{split}_seed{self.seed}_{key}.pt"
        if path.exists():
            try:
                return torch.load(path, weights_only=True)  # a cache is data: never unpickle code
            except Exception as e:  # a cache cut short by a killed run is rebuilt, not trusted
                log.warning("rebuilding unreadable cache %s (%s)", path, e)
        data = build_split(folder, split, self.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(path.parent)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(data, tmp)
        os.replace(tmp, path)  # atomic, so parallel sweep jobs never read half a file
        return data

    def load(self):
        train, test = self.split("train"), self.split("test")
        if len(train["x"]) < len(test["x"]):  # MNIST's train split is six times its test split
            folder = Path(self.data_dir) / "mnist"
            raise DataError(
                f"the MNIST train files in {folder} hold {len(train['x'])} images and the test files "
                f"{len(test['x'])}: train and test look swapped (train-* should be the larger); check the file names"
            )
        n = len(train["x"])
        dev_idx, train_idx = seeded_split(n, round(n * self.dev_fraction), self.seed)
        tasks = [t.name for t in self.tasks]
        return (
            {t: Subset(ImageData(train["x"], labels(train, t)), train_idx) for t in tasks},
            Subset(ImageData(train["x"], labels(train, self.target)), dev_idx),
            {t: ImageData(test["x"], labels(test, t)) for t in tasks},
        )
