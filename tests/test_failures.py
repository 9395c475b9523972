"""Faults a cluster or a user produces: SIGTERM, colliding run folders, half-written results, hostile files."""

from __future__ import annotations

import json
import logging
import os
import signal

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from src.config import ConfigError
from src.files import write_atomically
from src.train import build, train
from tests.conftest import compose_config


class SigtermAt(Callback):
    """Sends this process SIGTERM after the first step of ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_with_143_and_says_how_to_resume(tiny_cfg, tmp_path, caplog):
    cfg = tiny_cfg("method=uniform", "trainer.max_epochs=3")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        train(cfg, callbacks=[SigtermAt(epoch=1)])
    assert stopped.value.code == 143
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.exists() and torch.load(last, weights_only=True)["epoch"] == 0  # epoch 0's, not a partial epoch 1
    assert not (tmp_path / "run" / "results.json").exists()
    assert f"ckpt_path={last}" in caplog.text and "stopped by SIGTERM in epoch 1" in caplog.text


def test_single_run_folders_are_unique_within_a_second(tmp_path):
    dirs = set()
    for _ in range(2):
        cfg = compose_config(["method=uniform"])
        HydraConfig.instance().set_config(cfg)  # Hydra resolves its own run folder with its runtime set
        dirs.add(OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"])
    HydraConfig.instance().cfg = None
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


# --- a resume must fit the run ----------------------------------------------------------------------
def _first_run(tiny_cfg, *overrides):
    train(tiny_cfg(*overrides))
    return tiny_cfg  # the folder now holds last.ckpt and the best checkpoint


@pytest.mark.parametrize(
    ("first", "resume", "named"),
    [
        (["method=alphavil"], ["method=uniform"], "method._target_: 'src.methods.alphavil.AlphaVIL' in the checkpoint"),
        ([], ["task.target=right", "task.auxiliaries=[left]"], "task.target: 'left' in the checkpoint, 'right' now"),
        ([], ["model.optimizer.lr=0.5"], "model.optimizer.lr"),
        ([], ["seed=1"], "seed: 0 in the checkpoint, 1 now"),
        (["method=static"], ["method=static", "method.weights={right: 0.3}"], "method.weights.right"),
        ([], ["callbacks.model_checkpoint.mode=min"], "callbacks.model_checkpoint.mode: 'max' in the checkpoint"),
    ],
    ids=["method", "target", "lr", "seed", "method-option", "best-rule"],
)
def test_a_resume_that_changes_the_run_is_refused_naming_the_keys(
    first, resume, named, tiny_cfg, tmp_path, monkeypatch
):
    _first_run(tiny_cfg, *first, "trainer.max_epochs=1")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    monkeypatch.setattr(
        "src.train._assemble", lambda *args, **kwargs: pytest.fail("data loaded before the resume was checked")
    )
    with pytest.raises(ConfigError, match="written by a different run") as refused:
        train(tiny_cfg(*resume, "trainer.max_epochs=2", f"ckpt_path={last}"))
    assert named in str(refused.value)


def test_a_refused_or_skipped_start_puts_back_the_runs_hydra_files(tiny_cfg, tmp_path):
    """Hydra rewrites .hydra/ before the task runs; a refused resume or a finished run's rerun must not keep that."""
    hydra_dir = tmp_path / "run" / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "config.yaml").write_text("seed: 0\n")  # as Hydra writes it for the first start
    train(tiny_cfg("trainer.max_epochs=1", "ckpt_path=auto", "test=false"))
    assert (hydra_dir / "accepted" / "config.yaml").read_text() == "seed: 0\n"
    (hydra_dir / "config.yaml").write_text("seed: 1\n")  # Hydra's rewrite for a start with other settings
    with pytest.raises(ConfigError, match=r"holds a finished run with other settings \(seed\)"):
        train(tiny_cfg("trainer.max_epochs=2", "ckpt_path=auto", "seed=1"))
    assert (hydra_dir / "config.yaml").read_text() == "seed: 0\n"
    train(tiny_cfg("trainer.max_epochs=1", "ckpt_path=auto", "test=false"))  # finished: skipped, files as they were
    (hydra_dir / "config.yaml").write_text("seed: 0  # rewritten\n")
    train(tiny_cfg("trainer.max_epochs=1", "ckpt_path=auto", "test=false"))
    assert (hydra_dir / "config.yaml").read_text() == "seed: 0\n"
    # a folder from before .hydra/accepted/ existed: the refused start's files go aside, saying so
    import shutil

    shutil.rmtree(hydra_dir / "accepted")
    (hydra_dir / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="other settings"):
        train(tiny_cfg("trainer.max_epochs=2", "ckpt_path=auto", "seed=1"))
    assert (
        not (hydra_dir / "config.yaml").exists() and (hydra_dir / "refused" / "config.yaml").read_text() == "seed: 1\n"
    )


def test_a_resume_may_change_epochs_hardware_loggers_and_paths(tiny_cfg, tiny_data, tmp_path):
    import shutil

    _first_run(tiny_cfg, "trainer.max_epochs=1")
    moved = tmp_path / "moved_data"
    shutil.copytree(tiny_data, moved)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    results = train(
        tiny_cfg(
            "trainer.max_epochs=2", f"ckpt_path={last}", f"paths.data_dir={moved}", "logger=csv",
            "trainer.enable_progress_bar=true", "task.num_workers=0", "test=true",
        )
    )  # fmt: skip
    assert len(results["dev_history"]) == 2


def test_ckpt_path_auto_continues_in_the_run_folder_exactly(tiny_cfg, tmp_path):
    full = train(tiny_cfg("method=alphavil", "trainer.max_epochs=3"))
    os.rename(tmp_path / "run", tmp_path / "full")
    train(tiny_cfg("method=alphavil", "trainer.max_epochs=2", "ckpt_path=auto"))  # a fresh folder: from scratch
    resumed = train(tiny_cfg("method=alphavil", "trainer.max_epochs=3", "ckpt_path=auto"))  # picks up last.ckpt
    assert resumed["dev_history"] == full["dev_history"] and resumed["alpha_history"] == full["alpha_history"]
    assert resumed["target_test"] == full["target_test"]


def test_a_resumed_run_tests_its_own_best_checkpoint(tiny_cfg, tmp_path):
    """Resumed into a new folder whose best epoch predates the resume; the original folder then disappears."""
    import shutil

    first = train(tiny_cfg("method=uniform", "trainer.max_epochs=2", "test=false"))
    original = tmp_path / "original"
    os.rename(tmp_path / "run", original)
    best = next((original / "checkpoints").glob("best-*.ckpt"))

    class DeleteOriginal(Callback):
        def on_train_start(self, trainer, module):
            shutil.rmtree(original)

    class WorseThird(Callback):
        """The third epoch scores below every other, so the best checkpoint stays the original run's."""

        def on_validation_end(self, trainer, module):  # before the checkpoint callbacks, which Lightning runs last
            module.dev_scores[-1] = -1.0
            trainer.callback_metrics["dev/score"] = torch.tensor(-1.0)

    results = train(
        tiny_cfg("method=uniform", "trainer.max_epochs=3", f"ckpt_path={original}/checkpoints/last.ckpt"),
        callbacks=[DeleteOriginal(), WorseThird()],
    )
    assert not original.exists()
    assert results["dev_history"][:2] == first["dev_history"] and results["best_epoch"] < 2
    own = list((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    assert [p.name for p in own] == [best.name]  # copied from the original folder before it disappeared
    assert results["target_test"] == results["test"]["left"]["accuracy"]


def test_a_resume_whose_best_checkpoint_is_gone_stops_before_training(tiny_cfg, tmp_path):
    train(tiny_cfg("method=uniform", "trainer.max_epochs=1", "test=false"))
    for best in (tmp_path / "run" / "checkpoints").glob("best-*.ckpt"):
        best.unlink()
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match="best checkpoint .* no longer exists"):
        train(tiny_cfg("method=uniform", "trainer.max_epochs=2", f"ckpt_path={last}"))


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (None, "no such file"),
        ("just text\n", "is not a checkpoint this framework can read"),
        ({"state_dict": {}, "epoch": 0}, "holds no record of the run"),
    ],
    ids=["missing", "text-file", "foreign-checkpoint"],
)
def test_a_bad_checkpoint_file_is_named(content, phrase, tiny_cfg, tmp_path):
    path = tmp_path / "given.ckpt"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=phrase):
        train(tiny_cfg(f"ckpt_path={path}"))


# --- Slurm: requeue through submitit, no mid-epoch checkpoints ---------------------------------------
def test_slurm_launcher_is_set_to_requeue_into_the_run_folder(tmp_path):
    cfg = compose_config(["hydra/launcher=slurm"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0
    assert cfg.ckpt_path == "auto"  # the requeued job finds its own last.ckpt


def test_on_slurm_lightnings_mid_epoch_auto_requeue_is_off(tiny_cfg, monkeypatch):
    from lightning_fabric.plugins.environments import SLURMEnvironment

    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "4242", "SLURM_NODELIST": "node1",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}  # fmt: skip
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    dm, module, trainer = build(tiny_cfg("trainer.max_epochs=1"))
    env = trainer._accelerator_connector.cluster_environment
    assert isinstance(env, SLURMEnvironment) and not env.auto_requeue
    handlers = []

    class Spy(Callback):
        def on_train_start(self, trainer, module):  # while fitting, Lightning's handlers are in place
            handlers.append((signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM)))

    before = signal.getsignal(signal.SIGUSR1)
    trainer.callbacks.append(Spy())
    trainer.fit(module, datamodule=dm)
    usr1, term = handlers[0]
    assert usr1 == before  # no handler that would write a mid-epoch checkpoint and requeue
    assert term != signal.SIG_DFL  # SIGTERM is still noted: the run stops at the next step


@pytest.mark.slow
def test_a_sweep_stopped_by_sigterm_finishes_when_run_again_in_its_folder(tiny_data, tmp_path):
    """What a preempted and requeued sweep does: stop with 143, then run again and continue each job's epochs."""
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "src.run", "-m", "method=uniform,single_task", f"paths.data_dir={tiny_data}",
            "task.verify_checksums=false", "task.download=false", "task.max_train_examples=160",
            "task.max_eval_examples=60", "trainer.max_epochs=12", "trainer.enable_progress_bar=false",
            "logger=none", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, "ALPHAVIL_CACHE_DIR": str(tmp_path / "cache")}
    first = sweep / "multimnist_left" / "uniform" / "seed0_0"
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (first / "checkpoints" / "last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out[-3000:]
    assert "stopped by SIGTERM" in out and not (first / "results.json").exists()
    stopped_at = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]

    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing from" in again.stderr + again.stdout
    for job in (first, sweep / "multimnist_left" / "single_task" / "seed0_1"):
        results = json.loads((job / "results.json").read_text())
        assert len(results["dev_history"]) == 12 and results["target_test"] is not None
    assert stopped_at < 11  # the first job was stopped part-way and continued, not rerun from scratch or skipped


# --- a diverging run is flagged ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("losses", "flagged_at"),
    [
        ([2.0, 1.0, 0.9, 0.95], None),  # noise around the best: no flag
        ([2.0, 1.0, 9.9], None),  # just under 10× the best
        ([2.0, 1.0, 10.5], 2),  # 10.5× the best: diverging
        ([3e7, 6e8], 0),  # the first epoch already 1e7× chance level (ln 10), as αVIL at lr=100 on MultiMNIST
        ([2.0, float("nan")], 1),
    ],
)
def test_a_diverging_dev_loss_is_flagged(losses, flagged_at, tiny_cfg):
    _, module, _ = build(tiny_cfg())
    for epoch, loss in enumerate(losses):
        module.check_divergence(epoch, loss)
        module.dev_losses.append(loss)
    if flagged_at is None:
        assert module.warnings == []
    else:
        assert module.warnings[0].startswith(f"epoch {flagged_at}: ")  # the first flag at the first bad epoch
        assert "training is diverging; lower the learning rate" in module.warnings[0]


def test_a_normal_run_records_its_dev_losses_and_no_warning(tiny_cfg, tmp_path):
    results = train(tiny_cfg("trainer.max_epochs=2"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(saved["dev_loss_history"]) == 2 and all(0 < x < 10 for x in saved["dev_loss_history"])
    assert saved["warnings"] == [] == results["warnings"]


def test_sigterm_during_validation_also_exits_143(tiny_cfg, caplog):
    """Lightning raises its own SIGTERMException (a SystemExit with status 0) outside training steps."""

    class SigtermInValidation(Callback):
        def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
            if trainer.current_epoch == 1 and batch_idx == 0:
                os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        train(tiny_cfg("method=uniform", "trainer.max_epochs=3", "task.eval_batch_size=16"), [SigtermInValidation()])
    assert stopped.value.code == 143 and "stopped by SIGTERM" in caplog.text


def test_sigterm_while_testing_exits_143_with_a_resume_command_that_pastes(tiny_cfg, tmp_path, caplog):
    """Lightning's SIGTERMException while testing is a SystemExit with status 0: a scheduler would see success."""

    class SigtermInTest(Callback):
        def on_test_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
            os.kill(os.getpid(), signal.SIGTERM)

    import shlex

    typed = ["method=uniform", "task.train_examples={left: 50}"]  # as typed on a command line
    cfg = tiny_cfg("method=uniform", "trainer.max_epochs=1")
    cfg.launch.overrides = typed  # what pin() writes from the command line
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        train(cfg, callbacks=[SigtermInTest()])
    assert stopped.value.code == 143 and "stopped by SIGTERM while testing" in caplog.text
    assert not (tmp_path / "run" / "results.json").exists()
    command = caplog.text.split("Continue in this folder with `", 1)[1].split("`", 1)[0]
    assert "task.train_examples={left: 50}" in shlex.split(command)  # one argument, as it was given


def test_a_resume_in_place_without_last_ckpt_refuses_instead_of_starting_over(tiny_cfg, tmp_path):
    train(tiny_cfg("method=uniform", "ckpt_path=auto", "trainer.max_epochs=1", "test=false"))
    (tmp_path / "run" / "checkpoints" / "last.ckpt").unlink()
    before = (tmp_path / "run" / "results.json").read_text()
    with pytest.raises(ConfigError, match=r"holds best-epoch000.ckpt but no last.ckpt to continue from"):
        train(tiny_cfg("method=uniform", "ckpt_path=auto", "trainer.max_epochs=2"))
    assert (tmp_path / "run" / "results.json").read_text() == before


def test_ctrl_c_exits_130_with_the_resume_commands(tiny_cfg, tmp_path, caplog):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as a shell delivers it, whatever ran before

    class CtrlC(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 0:
                os.kill(os.getpid(), signal.SIGINT)

    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        train(tiny_cfg("method=uniform", "trainer.max_epochs=3"), callbacks=[CtrlC()])
    assert stopped.value.code == 130 and "stopped by SIGINT (Ctrl-C) in epoch 1" in caplog.text
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the last whole epoch's
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again


def test_a_kill_while_the_checkpoints_are_saved_leaves_a_run_that_resumes_exactly(tiny_cfg, tmp_path, monkeypatch):
    """Killed (here: an exception inside Lightning's save) after epoch 1's new best is written and before its
    last.ckpt is: the best that the previous last.ckpt names is still there, so the run resumes in place and
    ends as an uninterrupted one does."""
    import shutil

    from pytorch_lightning import Trainer

    whole = train(tiny_cfg("method=uniform", "trainer.max_epochs=3"))
    assert whole["dev_history"][1] > whole["dev_history"][0]  # epoch 1 writes a new best, replacing epoch 0's
    shutil.rmtree(tmp_path / "run")

    save = Trainer.save_checkpoint

    def killed_while_saving_last(trainer, filepath, *args, **kwargs):
        if "last.ckpt" in str(filepath) and trainer.current_epoch == 1:
            raise SystemExit(137)  # SIGKILL can't be caught; the process just stops here
        return save(trainer, filepath, *args, **kwargs)

    monkeypatch.setattr(Trainer, "save_checkpoint", killed_while_saving_last)
    with pytest.raises(SystemExit):
        train(tiny_cfg("method=uniform", "trainer.max_epochs=3", "ckpt_path=auto"))
    monkeypatch.setattr(Trainer, "save_checkpoint", save)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 0  # whole, epoch 0's
    resumed = train(tiny_cfg("method=uniform", "trainer.max_epochs=3", "ckpt_path=auto"))
    assert resumed["dev_history"] == whole["dev_history"] and resumed["target_test"] == whole["target_test"]


def test_a_finished_run_started_again_in_its_folder_keeps_its_record(tiny_cfg, tmp_path):
    first = train(tiny_cfg("method=uniform", "ckpt_path=auto"))
    again = train(tiny_cfg("method=uniform", "ckpt_path=auto"))
    assert again == json.loads((tmp_path / "run" / "results.json").read_text())
    assert again["wall_seconds"] == first["wall_seconds"]
    with pytest.raises(ConfigError, match="holds a finished run with other settings"):
        train(tiny_cfg("method=uniform", "ckpt_path=auto", "task.budget=proportional"))


@pytest.mark.slow
def test_a_config_refused_at_validation_leaves_no_run_folder(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "src.run", "+method.typo=1", f"hydra.run.dir={run}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "method.typo: not an option of method" in proc.stderr
    assert not run.exists()


def test_sigterm_while_the_data_loads_exits_143_with_the_resume_commands(tiny_cfg, caplog, monkeypatch):
    from src.data.base import MultiTaskDataModule

    real = MultiTaskDataModule.setup

    def setup_and_sigterm(self, stage=None):
        os.kill(os.getpid(), signal.SIGTERM)  # the default action would end the process without a word
        return real(self, stage)

    monkeypatch.setattr(MultiTaskDataModule, "setup", setup_and_sigterm)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        train(tiny_cfg("method=uniform", "trainer.max_epochs=1"))
    assert (
        stopped.value.code == 143 and "stopped by SIGTERM" in caplog.text and "Continue in this folder" in caplog.text
    )
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_without_a_checkpoint_callback_the_record_names_the_tested_epoch(tiny_cfg):
    results = train(tiny_cfg("method=uniform", "callbacks=none", "trainer.max_epochs=3"))
    assert results["tested_weights"] == "last" and results["tested_epoch"] == 2 and results["best_epoch"] is None
    assert results["target_dev"] == results["dev_history"][2]


def test_ctrl_c_before_training_exits_130(tiny_cfg, caplog, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("src.train._assemble", interrupted)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        train(tiny_cfg("method=uniform"))
    assert stopped.value.code == 130 and "stopped by SIGINT (Ctrl-C) while setting up" in caplog.text


def test_without_dev_scores_the_record_says_the_last_weights_were_tested(tiny_cfg):
    results = train(tiny_cfg("method=uniform", "trainer.limit_val_batches=0"))
    assert results["tested_weights"] == "last" and results["best_epoch"] is None and results["tested_epoch"] == 1


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_message(tiny_cfg, tmp_path, caplog):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "run"
    folder.mkdir()
    lock = {"host": socket.gethostname(), "pid": int(dead.stdout), "since": 0, "what": "a run", "argv": []}
    (folder / ".run.lock").write_text(json.dumps(lock))
    with caplog.at_level(logging.WARNING):
        results = train(tiny_cfg("method=uniform", "trainer.max_epochs=1"))
    assert results["target_test"] is not None and "taking over the lock of process" in caplog.text
    assert not (folder / ".run.lock").exists()  # released when the run ended


@pytest.mark.slow
def test_a_second_run_on_a_folder_in_use_refuses_and_the_first_finishes_intact(tiny_data, tmp_path):
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, TINY

    folder, release = tmp_path / "shared", tmp_path / "release"
    command = [
        sys.executable, "-m", "src.run", *[o for o in TINY if not o.startswith("ckpt_path")], "trainer.max_epochs=3",
        f"paths.data_dir={tiny_data}", f"paths.cache_dir={tmp_path}/cache", f"hydra.run.dir={folder}",
    ]  # fmt: skip
    # the first run holds the folder after its first epoch until the second has been refused (however long the
    # second takes to start), then finishes: no race with the machine's speed
    hold = ["+callbacks.hold._target_=tests.hold.HoldUntil", f"+callbacks.hold.release={release}"]
    first = subprocess.Popen([*command, *hold], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (folder / ".run.lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run([*command, "seed=1"], cwd=ROOT, capture_output=True, text=True)
    release.touch()
    assert second.returncode != 0 and "is in use by a run: process" in second.stderr, second.stderr[-2000:]
    assert "seed: 0" in (folder / ".hydra" / "config.yaml").read_text()  # the refused start's rewrite put back
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    results = json.loads((folder / "results.json").read_text())
    assert results["epochs"] == 3 and len(results["dev_history"]) == 3  # the first run's record, whole


def test_a_resume_on_other_mnist_data_is_refused(tiny_cfg, tmp_path):
    """Checksums off and the data folder moved to other files: the resume names the split that changed."""
    from src.data.base import DataError
    from tests.conftest import make_mnist

    train(tiny_cfg("method=uniform", "trainer.max_epochs=1", "ckpt_path=auto"))
    other = make_mnist(tmp_path / "other", seed=1)
    with pytest.raises(DataError, match=r"the data changed since the checkpoint was written \(mnist/test, mnist/train"):
        train(tiny_cfg("method=uniform", "trainer.max_epochs=2", "ckpt_path=auto", f"paths.data_dir={other}"))


def test_a_token_cache_overwritten_with_garbage_is_rebuilt_with_a_warning(tiny_glue, tmp_path, caplog):
    root = _copy_glue(tiny_glue, tmp_path)
    before = _rte_labels(root, tmp_path / "cache", tiny_glue)
    caches = sorted((tmp_path / "cache").rglob("rte_train_*.arrow"))
    assert caches
    for cache in caches:
        cache.write_bytes(b"not an arrow file")
    with caplog.at_level(logging.WARNING):
        assert _rte_labels(root, tmp_path / "cache", tiny_glue) == before
    assert "rebuilding the unreadable token cache" in caplog.text and str(caches[0].name) in caplog.text


def test_a_cache_part_left_by_a_killed_writer_is_removed(tiny_cfg, tmp_path):
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)  # fmt: skip
    folder = tmp_path / "cache" / "multimnist"
    folder.mkdir(parents=True)
    (folder / f"train_seed0_x.{dead}.tmp").write_bytes(b"half a file")
    (folder / f"train_seed0_y.{os.getpid()}.tmp").write_bytes(b"being written")  # a live writer's: kept
    train(tiny_cfg("method=uniform", "trainer.max_epochs=1", "test=false"))
    assert sorted(p.name for p in folder.glob("*.tmp")) == [f"train_seed0_y.{os.getpid()}.tmp"]


def test_a_full_disk_at_a_checkpoint_names_the_file_and_keeps_what_was_written(tiny_cfg, tmp_path, monkeypatch):
    import errno

    import pytorch_lightning as pl

    real, calls = pl.Trainer.save_checkpoint, []

    def full_after_two(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) > 2:  # epoch 0's best and last are written; epoch 1's best finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, filepath, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", full_after_two)
    with pytest.raises(OSError, match=r"could not write the checkpoint .*best-epoch001.ckpt: No space left on device"):
        train(tiny_cfg("method=uniform", "trainer.max_epochs=2", "model.optimizer.lr=0.01"))
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["best-epoch000.ckpt", "last.ckpt"]  # whole, and no part left behind


def test_a_copied_run_folder_resumed_on_a_full_disk_keeps_its_own_best_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    """A run folder copied whole, resumed in the copy: its own best checkpoint is the one it uses (the original's is
    not copied over it), and a copy cut short by a full disk never truncates a file in the run folder."""
    import errno
    import shutil
    from pathlib import Path

    train(tiny_cfg("method=uniform", "trainer.max_epochs=2", "test=false"))
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "run", copy)
    (best,) = (copy / "checkpoints").glob("best-*.ckpt")
    size = best.stat().st_size

    def full_disk(source, target, *args, **kwargs):  # writes half, then the disk is full
        Path(target).write_bytes(Path(source).read_bytes()[: size // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", full_disk)
    results = train(tiny_cfg("method=uniform", "trainer.max_epochs=3", "ckpt_path=auto", f"paths.output_dir={copy}"))
    assert results["epochs"] == 3 and best.stat().st_size == size or not best.exists()
    for ckpt in (copy / "checkpoints").glob("*.ckpt"):
        torch.load(ckpt, map_location="cpu", weights_only=False)  # whole: none truncated

    from src.files import copy_atomically

    target = tmp_path / "kept.bin"
    target.write_bytes(b"intact")
    with pytest.raises(OSError, match="could not copy .*is the disk full"):
        copy_atomically(best if best.exists() else next((copy / "checkpoints").glob("*.ckpt")), target)
    assert target.read_bytes() == b"intact" and not list(tmp_path.glob(".kept.bin.*"))
