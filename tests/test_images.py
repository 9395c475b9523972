"""Image tasks listed in CSV files (task=images, src/data/images.py): a CelebA-style set of attributes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from src.config import ConfigError, validate
from src.data.base import DataError
from src.train import build, train
from tests.conftest import TINY, compose_config


def write_images(folder: Path, n: int = 60) -> dict[str, Path]:
    """``n`` small PNGs (a bright square somewhere) and train/test listings with two attributes per image."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        pixels = rng.integers(0, 60, (40, 32), dtype=np.uint8)
        top = bool(rng.integers(0, 2))
        pixels[(2 if top else 22) : (18 if top else 38), 8:24] = 230
        Image.fromarray(pixels).save(folder / "img" / f"{i}.png")
        rows.append({"path": f"img/{i}.png", "top": "yes" if top else "no", "bright": float(pixels.mean())})
    frame = pd.DataFrame(rows)
    frame[:45].to_csv(folder / "train.csv", index=False)
    frame[45:].to_csv(folder / "test.csv", index=False)
    return {"train": folder / "train.csv", "test": folder / "test.csv"}


@pytest.fixture
def image_cfg(tmp_path):
    files = write_images(tmp_path / "celeb")
    listing = {"train": str(files["train"]), "test": str(files["test"])}
    entries = {
        "top": {"data_files": listing, "image": "path", "label": "top"},
        "bright": {"data_files": listing, "image": "path", "label": "bright"},
    }

    def make(*overrides: str, tasks: dict | None = None):
        return compose_config(
            [
                *[o for o in TINY if not o.startswith(("task.verify", "task.download"))],  # MNIST's options
                "task=images",
                "task.target=top",
                f"paths.cache_dir={tmp_path}/cache",
                "+task.tasks=" + json.dumps(tasks if tasks is not None else entries).replace('"', ""),
                *overrides,
            ],
            output_dir=tmp_path / "run",
        )

    make.entries, make.files = entries, files
    return make


def test_image_tasks_from_a_listing_train_with_the_lenet(image_cfg):
    results = train(image_cfg("method=uniform"))
    assert results["tasks"] == ["top", "bright"] and results["label_names"] == {"top": ["no", "yes"]}
    assert results["target_metric"] == "accuracy" and set(results["test"]) == {"top", "bright"}
    assert "pearson" in results["test"]["bright"]  # the brightness attribute is a regression


def test_images_are_decoded_grayscale_resized_and_cached(image_cfg):
    dm, _, _ = build(image_cfg())
    dm.setup()
    batch = dm.test_sets["top"].batch(torch.arange(3))
    assert batch["x"].shape == (3, 1, 28, 28) and batch["labels"].dtype == torch.long
    assert len(dm.test_sets["top"]) == 15 and len(dm.train_sets["top"]) + len(dm.dev_set) == 45
    cached = list((Path(dm.cache_dir) / "images").glob("*.pt"))
    assert len(cached) == 2  # train and test listings, decoded once for both tasks


@pytest.mark.parametrize(
    "change,phrase",
    [
        (lambda e, f: (f / "img" / "3.png").unlink(), "column 'path', row 3: the image"),
        (lambda e, f: e["top"].update(image="file"), "lacks the column 'file' named by its image field"),
        (lambda e, f: (f / "img" / "5.png").write_bytes(b"not a png"), "row 5: the image"),
        (lambda e, f: e["top"].update(label_names=["no", "maybe"]), "'yes' is not one of the labels ['no', 'maybe']"),
    ],
)
def test_a_bad_image_entry_is_refused_naming_task_field_and_row(image_cfg, change, phrase):
    entries = json.loads(json.dumps(image_cfg.entries))
    change(entries, image_cfg.files["train"].parent)
    with pytest.raises(Exception) as refused:  # noqa: B017 (Hydra wraps what the DataModule raises)
        build(image_cfg(tasks=entries))[0].setup()
    error = refused.value if isinstance(refused.value, DataError) else refused.value.__cause__
    assert isinstance(error, DataError) and phrase in str(error), str(refused.value)


def test_an_image_group_needs_tasks(image_cfg):
    with pytest.raises(ConfigError, match="tasks is empty"):
        validate(image_cfg(tasks={}))


def test_an_image_cache_cut_short_is_rebuilt_with_a_warning(image_cfg, tmp_path, caplog):
    import logging

    from src.train import build

    first, _, _ = build(image_cfg())
    first.setup()
    for cache in (tmp_path / "cache" / "images").glob("*.pt"):
        cache.write_bytes(cache.read_bytes()[:100])  # a kill while it was written
    with caplog.at_level(logging.WARNING):
        again, _, _ = build(image_cfg())
        again.setup()
    assert "rebuilding the unreadable image cache" in caplog.text
    assert torch.equal(again.train_sets["top"].data.x, first.train_sets["top"].data.x)


def test_16_bit_and_transparent_images_keep_their_contrast():
    import numpy as np
    from PIL import Image

    from src.data.images import grayscale

    ramp = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    deep = grayscale(Image.fromarray(ramp))  # a 16-bit grayscale image (mode I;16)
    assert np.asarray(deep).tolist() == [[0, 64, 128, 255]]  # scaled to 8 bits, not clipped to white
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 255, 255, 255)  # an opaque white pixel
    rgba[0, 1] = (255, 255, 255, 0)  # a transparent one
    assert np.asarray(grayscale(Image.fromarray(rgba))).tolist() == [[255, 0]]
