"""Faults a cluster or a user produces: SIGTERM, colliding run folders, half-written results, hostile files."""

from __future__ import annotations

import json
import logging
import os
import signal

import pytest
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from src.run import build, train, write_atomically
from tests.conftest import compose_config


class SigtermAt(Callback):
    """Sends this process SIGTERM after the first step of ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_with_143_and_says_how_to_resume(tiny_cfg, tmp_path, monkeypatch, caplog):
    cfg = tiny_cfg("method=uniform", "trainer.max_epochs=3")
    real_build = build

    def with_sigterm(cfg):
        dm, module, trainer = real_build(cfg)
        trainer.callbacks.append(SigtermAt(epoch=1))
        return dm, module, trainer

    monkeypatch.setattr("src.run.build", with_sigterm)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == 143
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.exists() and torch.load(last, weights_only=True)["epoch"] == 0  # epoch 0's, not a partial epoch 1
    assert not (tmp_path / "run" / "results.json").exists()
    assert f"ckpt_path={last}" in caplog.text and "stopped by SIGTERM in epoch 1" in caplog.text


def test_single_run_folders_are_unique_within_a_second(tmp_path):
    dirs = set()
    for _ in range(2):
        cfg = compose_config(["method=uniform"])
        dirs.add(OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"])
    assert len(dirs) == 2, dirs


def test_results_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_atomically(path, json.dumps({"old": 1}))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomically(path, json.dumps({"new": 2}))
    assert json.loads(path.read_text()) == {"old": 1}  # a reader sees the old file whole, never half the new one


class Payload:
    """Pickles to a call that creates ``marker``: what a hostile checkpoint or cache file would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_checkpoint_does_not_run_its_payload(tiny_cfg, tmp_path):
    marker, crafted = tmp_path / "pwned", tmp_path / "crafted.ckpt"
    torch.save({"state_dict": Payload(marker)}, crafted)
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|global"):
        train(tiny_cfg("method=uniform", f"ckpt_path={crafted}"))
    assert not marker.exists()


def test_a_crafted_data_cache_does_not_run_its_payload(tiny_cfg, tmp_path):
    cfg = tiny_cfg("method=uniform", "trainer.max_epochs=1")
    train(cfg)  # builds the cache
    marker = tmp_path / "pwned"
    caches = list((tmp_path / "cache" / "multimnist").glob("*.pt"))
    assert caches
    for path in caches:
        torch.save({"x": Payload(marker)}, path)
    train(cfg)  # the caches are refused and rebuilt
    assert not marker.exists()


# --- caches are keyed by what they were built from -------------------------------------------------
def _copy_glue(tiny_glue, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_glue / "glue", root / "glue")
    return root


def _rte_labels(root, cache, tiny_glue):
    from src.data.glue import GLUEDataModule

    dm = GLUEDataModule(
        target="rte",
        auxiliaries=[],
        tokenizer=str(tiny_glue / "models" / "tiny-bert"),
        data_dir=str(root),
        cache_dir=str(cache),
        max_length=32,
    )
    dm.setup()
    full = dm.train_sets["rte"].data  # the uncapped split, before the dev carve-out
    return full.batch(torch.arange(len(full)))["labels"].tolist()


def test_glue_cache_follows_edits_of_the_parquet_and_their_undoing(tiny_glue, tmp_path):
    import pandas as pd

    root = _copy_glue(tiny_glue, tmp_path)
    parquet = root / "glue" / "rte" / "train-00000-of-00001.parquet"
    original = parquet.read_bytes()
    before = _rte_labels(root, tmp_path / "cache", tiny_glue)
    frame = pd.read_parquet(parquet)
    frame["label"] = 1 - frame["label"]
    frame.to_parquet(parquet)
    assert _rte_labels(root, tmp_path / "cache", tiny_glue) == [1 - y for y in before]  # not the cached labels
    parquet.write_bytes(original)
    assert _rte_labels(root, tmp_path / "cache", tiny_glue) == before  # undone: the original data again


def test_a_truncated_parquet_stops_the_run_even_with_a_warm_cache(tiny_glue, tmp_path):
    from src.data.base import DataError

    root = _copy_glue(tiny_glue, tmp_path)
    _rte_labels(root, tmp_path / "cache", tiny_glue)  # warm cache
    parquet = root / "glue" / "rte" / "train-00000-of-00001.parquet"
    parquet.write_bytes(parquet.read_bytes()[:300])
    with pytest.raises(DataError, match=r"rte \(train\) from .*train-00000-of-00001.parquet: \w+"):
        _rte_labels(root, tmp_path / "cache", tiny_glue)


def test_multimnist_cache_follows_the_files_without_checksums(tmp_path):
    from src.data.multimnist import MultiMNISTDataModule
    from tests.conftest import make_mnist

    def left_labels():
        dm = MultiMNISTDataModule(
            data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), target="left",
            verify_checksums=False, download=False,
        )  # fmt: skip
        dm.setup()
        return dm.test_sets["left"].labels.tolist()

    make_mnist(tmp_path / "data", seed=0)
    first = left_labels()
    make_mnist(tmp_path / "data", seed=1)  # same path, new content
    assert left_labels() != first
    make_mnist(tmp_path / "data", seed=0)
    assert left_labels() == first
