"""End to end: fit + test on a tiny slice for every method, results.json, multirun, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from src.checkpoints import run_record
from src.module import lr_factor
from src.train import build, train
from tests.conftest import METHOD_CASES, ROOT

KEYS = {
    "target",
    "method",
    "tasks",
    "target_metric",
    "target_dev",
    "target_test",
    "best_epoch",
    "weights",
    "weight_history",
    "seed",
    "wall_seconds",
    "epoch_seconds",
}


@pytest.mark.parametrize("method", METHOD_CASES)
def test_fit_and_test_write_results(method, tiny_cfg, tmp_path):
    results = train(tiny_cfg(f"method={method}"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert KEYS <= saved.keys()
    assert saved == json.loads(json.dumps(results))
    assert saved["target"] == "left" and saved["tasks"] == ["left", "right"]
    assert saved["target_metric"] == "accuracy"
    assert len(saved["weight_history"]) == 2 and set(saved["weights"]) == {"left", "right"}
    assert saved["best_epoch"] in (0, 1) and saved["target_test"] == saved["test"]["left"]["accuracy"]
    assert saved["target_test"] * 60 == pytest.approx(round(saved["target_test"] * 60))  # k of the 60 test images
    assert saved["target_dev"] == max(saved["dev_history"])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_peak_memory_is_the_runs_own_not_the_jobs_before_it_in_the_process(tiny_cfg, tmp_path):
    """A multirun trains its jobs in one process: each run's peak resident size starts afresh at its training."""
    import numpy as np

    from src.record import peak_rss_mb, reset_peak_rss

    reset_peak_rss()
    before = peak_rss_mb()
    big = np.ones(400 * 2**20 // 8)  # 400 MB, every page touched: as a larger job earlier in the process
    held = peak_rss_mb()
    del big
    reset_peak_rss()
    if held - before < 300 or peak_rss_mb() > held - 300:  # a peak that cannot be reset (not Linux): nothing to check
        pytest.skip("this system keeps the process's peak resident size for its lifetime")
    big = np.ones(400 * 2**20 // 8)  # again, as the job before this run
    del big
    results = train(tiny_cfg("method=uniform", "trainer.max_epochs=1"))
    assert results["peak_memory_mb"] < held - 300 and results["peak_memory_scope"] == "training"


def test_callbacks_none_writes_no_checkpoints_and_tests_the_final_weights(tiny_cfg, tmp_path):
    class Keep(Callback):
        def on_test_end(self, trainer, module):
            self.module, self.datamodule = module, trainer.datamodule

    kept = Keep()
    results = train(tiny_cfg("method=uniform", "callbacks=none"), callbacks=[kept])
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    model, test = kept.module.model.eval(), kept.datamodule.test_sets["left"]
    batch = test.batch(torch.arange(len(test)))
    with torch.no_grad():
        by_hand = (model("left", batch).argmax(-1) == batch["labels"]).float().mean().item()
    assert results["target_test"] == pytest.approx(by_hand)
    # the record's dev score is the tested epoch's, and no best epoch is named as its source
    assert results["tested_weights"] == "last" and results["best_epoch"] is None
    assert results["tested_epoch"] == 1 and results["target_dev"] == results["dev_history"][-1]


def test_single_task_never_touches_the_auxiliary_head(tiny_cfg):
    datamodule, module, trainer = build(tiny_cfg("method=single_task"))
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    after = module.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("heads.right."))
    assert not torch.equal(before["heads.left.1.weight"], after["heads.left.1.weight"])
    assert module.method.weights() == {"left": 1.0, "right": 0.0}


def test_learns_the_tiny_task(tiny_cfg):
    results = train(tiny_cfg("method=uniform", "trainer.max_epochs=6", "task.max_train_examples=null"))
    assert results["target_test"] > 0.5  # ten blob positions; chance is 0.1


@pytest.mark.parametrize("method", METHOD_CASES)
def test_resume_at_an_epoch_boundary_is_exact(method, tiny_cfg, tmp_path):
    """A run stopped after epoch 2 and resumed ends exactly as an uninterrupted run."""
    full_dm, full, full_trainer = build(tiny_cfg(f"method={method}", "trainer.max_epochs=3"))
    full_trainer.fit(full, datamodule=full_dm)

    cfg = tiny_cfg(f"method={method}", "trainer.max_epochs=2")
    dm, first, trainer = build(cfg)
    trainer.fit(first, datamodule=dm)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    dm, resumed, trainer = build(tiny_cfg(f"method={method}", "trainer.max_epochs=3", f"ckpt_path={last}"))
    trainer.fit(resumed, datamodule=dm, ckpt_path=str(last))

    for k, v in full.model.state_dict().items():  # a conditioned model's extra state (its auxiliaries) is no tensor
        assert (
            torch.equal(v, resumed.model.state_dict()[k]) if torch.is_tensor(v) else v == resumed.model.state_dict()[k]
        ), k
    assert full.method.history == resumed.method.history
    assert torch.equal(full.method.w, resumed.method.w)


def test_lr_factor_by_hand():
    assert lr_factor(0.3) == 1.0
    assert lr_factor(0.05, "linear", 0.1) == pytest.approx(0.5)  # half-way through the warm-up
    assert lr_factor(0.1, "linear", 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, "linear", 0.1) == pytest.approx(0.5)  # half-way down
    assert lr_factor(1.0, "linear", 0.1) == 0.0
    assert lr_factor(0.75, "linear", 0.0) == pytest.approx(0.25)


class Rates(Callback):
    """The learning rate each planned step trained with."""

    def __init__(self):
        self.rates: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize("method", ["uniform", "forkmerge"])  # ForkMerge loads optimizer states inside epochs
def test_a_linear_schedule_sets_each_steps_rate(method, tiny_cfg):
    rates = Rates()
    train(tiny_cfg(f"method={method}", "model.lr_schedule.kind=linear", "model.lr_schedule.warmup=0.25"), [rates])
    n = len(rates.rates) // 2  # steps per epoch, 2 epochs
    expected = [1e-3 * lr_factor((e + (i + 0.5) / n) / 2, "linear", 0.25) for e in range(2) for i in range(n)]
    assert rates.rates == pytest.approx(expected)
    assert rates.rates[0] < max(rates.rates) > rates.rates[-1]  # up, then down


def test_a_linear_schedule_resumes_exactly_and_pins_max_epochs(tiny_cfg, tmp_path):
    linear = ("method=uniform", "model.lr_schedule.kind=linear", "model.lr_schedule.warmup=0.2", "trainer.max_epochs=3")
    full_dm, full, full_trainer = build(tiny_cfg(*linear))
    full_trainer.fit(full, datamodule=full_dm)

    class StopAfterTwo(Callback):
        def on_train_epoch_end(self, trainer, module):
            trainer.should_stop = trainer.current_epoch == 1

    dm, first, trainer = build(tiny_cfg(*linear), callbacks=[StopAfterTwo()])
    trainer.fit(first, datamodule=dm)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    dm, resumed, trainer = build(tiny_cfg(*linear, f"ckpt_path={last}"))
    trainer.fit(resumed, datamodule=dm, ckpt_path=str(last))
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # more epochs move a decaying rate's curve: a resume must not change them; a constant rate may
    assert run_record(tiny_cfg(*linear)) != run_record(tiny_cfg(*linear[:-1], "trainer.max_epochs=4"))
    assert run_record(tiny_cfg("trainer.max_epochs=3")) == run_record(tiny_cfg("trainer.max_epochs=4"))


@pytest.mark.slow
def test_multirun_sweeps_methods_and_seeds(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "ALPHAVIL_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.run",
            "-m",
            "method=single_task,uniform",
            "seed=0,1",
            f"paths.data_dir={tiny_data}",
            "task.verify_checksums=false",
            "task.download=false",
            "task.max_train_examples=64",
            "task.max_eval_examples=32",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "logger=csv",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = sorted(p.relative_to(sweep).as_posix() for p in sweep.rglob("results.json"))
    assert found == [
        f"multimnist_left/{m}/seed{s}_{n}/results.json"
        for m, s, n in (("single_task", 0, 0), ("single_task", 1, 1), ("uniform", 0, 2), ("uniform", 1, 3))
    ]
    seeds = {json.loads((sweep / f).read_text())["seed"] for f in found}
    assert seeds == {0, 1}
    # the record and the folder's config say what this job was, as the entry point pinned it (src/runtime.py)
    job = sweep / "multimnist_left/uniform/seed1_3"
    record = json.loads((job / "results.json").read_text())
    assert record["method_choice"] == "uniform" and "seed=1" in record["overrides"]
    saved = OmegaConf.load(job / ".hydra/config.yaml")
    assert saved.launch.multirun is True and saved.launch.sweep_group == "sweep"
    assert saved.run_name == "multimnist_left/uniform/seed1" and saved.paths.output_dir == str(job)
