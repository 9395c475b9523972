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
