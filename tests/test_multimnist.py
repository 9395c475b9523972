"""MultiMNIST: the IDX reader, the construction, its determinism and cache, and the real files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.data.base import DataError
from src.data.multimnist import FILES, MultiMNISTDataModule, build_split, compose, ensure_mnist, read_idx
from src.data.schedule import DEV
from tests.conftest import make_mnist, write_idx


def test_idx_round_trip(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), a)


def test_truncated_idx_is_a_clear_error(tmp_path):
    a = np.zeros((5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", a)
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "cut.gz").write_bytes((tmp_path / "x.gz").read_bytes()[:20])
    with pytest.raises(DataError, match="short.gz|cut.gz"):
        read_idx(tmp_path / "cut.gz")


def test_not_idx_is_a_clear_error(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "x.gz")


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(DataError) as e:
        ensure_mnist(tmp_path, download=False)
    assert str(tmp_path / "mnist") in str(e.value) and "ALPHAVIL_DATA_DIR" in str(e.value)


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    make_mnist(tmp_path, n_train=10, n_test=10)
    with pytest.raises(DataError, match="md5"):
        ensure_mnist(tmp_path, download=False, verify=True)


def test_compose_places_digits_and_overlaps_by_max():
    digits = np.zeros((2, 28, 28), dtype=np.uint8)
    digits[0, :, :] = 100
    digits[1, 10:20, 10:20] = 200
    out = compose(digits, np.array([1, 0]))
    canvas = torch.zeros(36, 36)
    canvas[0:28, 0:28] = 100
    canvas[6:34, 6:34] = torch.maximum(canvas[6:34, 6:34], torch.from_numpy(digits[1]).float())
    expected = F.interpolate(canvas[None, None], size=(28, 28), mode="bilinear", antialias=True)[0, 0]
    assert out.shape == (2, 28, 28) and out.dtype == torch.uint8
    assert torch.allclose(out[0].float(), expected.round(), atol=1)


def test_labels_follow_the_source_digits(tiny_data):
    folder = tiny_data / "mnist"
    split = build_split(folder, "train", seed=3)
    source = torch.from_numpy(read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64))
    assert split["x"].shape == (300, 28, 28)
    assert torch.equal(split["left"], source)
    assert torch.equal(split["right"], source[split["partner"]])
    assert set(split["noise"].tolist()) <= set(range(10))


def test_construction_is_deterministic_per_seed(tiny_data):
    folder = tiny_data / "mnist"
    a, b, c = (build_split(folder, "train", s) for s in (1, 1, 2))
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["partner"], b["partner"])
    assert not torch.equal(a["partner"], c["partner"])


def _datamodule(tiny_data, tmp_path, **kw):
    kw = {"target": "left", "auxiliaries": ["right"], "seed": 0, "verify_checksums": False, "download": False, **kw}
    return MultiMNISTDataModule(data_dir=str(tiny_data), cache_dir=str(tmp_path), **kw)


def test_dev_is_carved_from_train_and_removed_from_every_task(tiny_data, tmp_path):
    dm = _datamodule(tiny_data, tmp_path, dev_fraction=0.2)
    dm.setup()
    sizes = dm.sizes()
    assert sizes == {"left": 240, "right": 240, DEV: 60}
    dev_images = dm.dev_set.batch(torch.arange(60))["x"]
    train_images = dm.train_sets["right"].batch(torch.arange(240))["x"]
    same = (dev_images[:, None] == train_images[None]).flatten(2).all(-1)
    assert not same.any()
    assert len(dm.test_sets["left"]) == 100


def test_second_setup_reads_the_cache(tiny_data, tmp_path, monkeypatch):
    _datamodule(tiny_data, tmp_path).setup()
    assert list((tmp_path / "multimnist").glob("train_seed0_*.pt"))

    def fail(*a, **k):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr("src.data.multimnist.build_split", fail)
    dm = _datamodule(tiny_data, tmp_path)
    dm.setup()
    assert len(dm.train_sets["left"]) == 270


def test_caps_limit_every_split(tiny_data, tmp_path):
    dm = _datamodule(tiny_data, tmp_path, max_train_examples=50, max_eval_examples=20)
    dm.setup()
    assert dm.sizes() == {"left": 50, "right": 50, DEV: 20}
    assert len(dm.test_sets["right"]) == 20


@pytest.mark.slow
def test_real_mnist_files(real_data, tmp_path):
    folder = ensure_mnist(real_data, download=False, verify=True)
    assert sorted(p.name for p in folder.glob("*.gz")) == sorted(FILES)
    test = build_split(folder, "test", seed=0)
    labels = torch.from_numpy(read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    assert test["x"].shape == (10000, 28, 28)
    assert torch.equal(test["left"], labels) and torch.equal(test["right"], labels[test["partner"]])


def test_official_files_under_each_others_names_are_named_as_swapped(tmp_path, monkeypatch):
    """Intact files with the train and test names swapped: not "corrupt", but which file each one is."""
    import src.data.multimnist as mm
    from src.data.base import DataError
    from tests.conftest import make_mnist

    folder = make_mnist(tmp_path) / "mnist"
    monkeypatch.setattr(mm, "FILES", {name: mm.md5(folder / name) for name in mm.FILES})  # these are "official"
    train, test = folder / "train-labels-idx1-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    train.rename(folder / "swap"), test.rename(train), (folder / "swap").rename(test)
    with pytest.raises(DataError, match=r"is the official t10k-labels-idx1-ubyte.gz, not train-labels-idx1-ubyte.gz"):
        mm.ensure_mnist(tmp_path, download=False, verify=True)
