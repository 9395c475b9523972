"""A catalogue of bad inputs: configs, data files, checkpoints and signals, each with the phrase its error must hold.

Every case is what a user or a cluster produces; each must stop with a message that names the problem
(the key, the file, the command to run), not a traceback from deep inside a library or a silent exit 0.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from pytorch_lightning.callbacks import Callback

from src.config import validate
from src.train import train
from tests.conftest import GLUE_TINY, TINY, compose_config, make_glue, make_mnist, make_tiny_encoder


@dataclass
class World:
    """Fresh copies of the fixtures for one case, and helpers that run on them."""

    tmp: Path
    mnist: Path
    glue: Path
    checkpoint: Path  # a last.ckpt of a finished 1-epoch uniform run on ``mnist`` (a copy: cases may break it)

    def mnist_cfg(self, *overrides: str):
        return compose_config(
            [*TINY, f"paths.data_dir={self.mnist}", f"paths.cache_dir={self.tmp}/cache", *overrides],
            output_dir=self.tmp / "run",
        )

    def glue_cfg(self, *overrides: str):
        return compose_config(
            [*GLUE_TINY, f"paths.data_dir={self.glue}", f"paths.cache_dir={self.tmp}/cache",
             f"model.pretrained={self.glue}/models/tiny-bert", "task=glue_rte", "task.auxiliaries=[mrpc]",
             *overrides],
            output_dir=self.tmp / "run",
        )  # fmt: skip

    @property
    def encoder(self) -> Path:
        return self.glue / "models" / "tiny-bert"

    def parquet(self, task: str = "rte", split: str = "train") -> Path:
        return self.glue / "glue" / task / f"{split}-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("catalogue")
    mnist = make_mnist(root / "mnist_root")
    glue = make_glue(root / "glue_root")
    make_tiny_encoder(glue / "models" / "tiny-bert")
    cfg = compose_config(
        [*TINY, f"paths.data_dir={mnist}", f"paths.cache_dir={root}/cache", "trainer.max_epochs=1", "test=false"],
        output_dir=root / "trained",
    )
    train(cfg)
    return mnist, glue, root / "trained" / "checkpoints" / "last.ckpt"


@pytest.fixture
def world(originals, tmp_path) -> World:
    mnist, glue, checkpoint = originals
    shutil.copytree(mnist, tmp_path / "mnist_root")
    shutil.copytree(glue, tmp_path / "glue_root")
    shutil.copy(checkpoint, tmp_path / "given.ckpt")
    return World(tmp_path, tmp_path / "mnist_root", tmp_path / "glue_root", tmp_path / "given.ckpt")


def held_by_another(folder: Path) -> None:
    """The run folder's lock, as a live process on this host (the test's parent) holds it."""
    import json
    import socket

    folder.mkdir(parents=True, exist_ok=True)
    holder = {"host": socket.gethostname(), "pid": os.getppid(), "since": 0, "what": "a run", "argv": ["python"]}
    (folder / ".run.lock").write_text(json.dumps(holder))


# --- what a case does -------------------------------------------------------------------------------
def config(*overrides: str) -> Callable[[World], None]:
    """Compose and validate a MultiMNIST config with ``overrides`` (the first thing a run does)."""
    return lambda w: validate(w.mnist_cfg(*overrides))


def glue_config(*overrides: str) -> Callable[[World], None]:
    return lambda w: validate(w.glue_cfg(*overrides))


def mnist_run(*overrides: str, breaking: Callable[[World], None] = lambda w: None) -> Callable[[World], None]:
    """Break something with ``breaking``, then run on the tiny MultiMNIST."""

    def run(w: World) -> None:
        breaking(w)
        train(w.mnist_cfg(*overrides))

    return run


def more_epochs_without_checkpoints(w: World) -> None:
    """A finished run with callbacks=none (no last.ckpt), started again in its folder with more epochs."""
    train(w.mnist_cfg("callbacks=none", "ckpt_path=auto", "trainer.max_epochs=1"))
    train(w.mnist_cfg("callbacks=none", "ckpt_path=auto", "trainer.max_epochs=2"))


def search_run(*overrides: str, breaking: Callable[[World], None] = lambda w: None) -> Callable[[World], None]:
    """A search (``python -m src.search``) in ``<tmp>/search`` on the tiny MNIST."""

    def run(w: World) -> None:
        from src.search.command import run_search

        breaking(w)
        run_search(w.mnist_cfg(f"search.dir={w.tmp}/search", *overrides))

    return run


def trial_without_record(w: World) -> None:
    """A search folder that lost its search_record.json: a trial's record is there, its search's is not."""
    trial = w.tmp / "search" / "trials" / "right-1_sampled"
    trial.mkdir(parents=True)
    (trial / "results.json").write_text(json.dumps({"dev_history": [0.5, 0.6]}))


def unreadable_lock(w: World) -> None:
    """The run folder's lock holds something no run wrote (valid JSON, not a holder)."""
    folder = Path(w.mnist_cfg().paths.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".run.lock").write_text('["not", "a", "holder"]')


def glue_run(breaking: Callable[[World], None], *overrides: str) -> Callable[[World], None]:
    def run(w: World) -> None:
        breaking(w)
        train(w.glue_cfg(*overrides))

    return run


def text_run(change: Callable[[dict, Path], None], *overrides: str, task: str = "text") -> Callable[[World], None]:
    """Write two CSV tasks (``stars``: string labels; ``score``: a regression), let ``change`` edit their entries
    or files, then train ``task=text`` on them (``task=glue_rte`` to put them beside GLUE)."""

    def run(w: World) -> None:
        import json

        from tests.test_text import write_tasks

        files = write_tasks(w.tmp / "text")
        csv = w.tmp / "text" / "score.csv"
        pd.read_json(files["score"], lines=True).to_csv(csv, index=False)
        entries = {
            "stars": {
                "data_files": {"train": str(files["stars_train"]), "test": str(files["stars_test"])},
                "text": ["review"],
                "label": "stars",
            },
            "score": {"data_files": {"train": str(csv)}, "text": ["a", "b"], "label": "score", "test_fraction": 0.25},
        }
        change(entries, w.tmp / "text")
        aux = [t for t in entries if t != "stars"]
        train(
            w.glue_cfg(
                f"task={task}",
                "task.target=stars",
                f"task.auxiliaries=[{','.join(aux)}]",
                "+task.tasks=" + json.dumps(entries).replace('"', ""),
                *overrides,
            )
        )

    return run


def images_run(breaking: Callable[[Path], None]) -> Callable[[World], None]:
    """Write a CelebA-style listing of small PNGs (tests/test_images.py), break it, train ``task=images``."""

    def run(w: World) -> None:
        from tests.test_images import write_images

        files = write_images(w.tmp / "celeb")
        breaking(w.tmp / "celeb")
        listing = f"{{train:{files['train']},test:{files['test']}}}"
        overrides = [o for o in TINY if not o.startswith(("task.verify", "task.download"))]
        cfg = compose_config(
            [*overrides, "task=images", "task.target=top", f"+task.tasks.top={{data_files:{listing},label:top}}"],
            output_dir=w.tmp / "run",
        )
        train(cfg)

    return run


def edit_csv(name: str, column: str, row: int, value) -> Callable[[dict, Path], None]:
    def edit(entries: dict, folder: Path) -> None:
        frame = pd.read_csv(folder / name)
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        frame.to_csv(folder / name, index=False)

    return edit


def _offline(case: Callable[[World], None]) -> Callable[[World], None]:
    """``case`` with the Hub out of reach at once (offline mode: no 30 s of retries on this machine)."""

    def run(w: World) -> None:
        from unittest import mock

        import datasets.config
        import huggingface_hub.constants

        with (
            mock.patch.object(huggingface_hub.constants, "HF_HUB_OFFLINE", True),
            mock.patch.object(datasets.config, "HF_HUB_OFFLINE", True),
        ):
            case(w)

    return run


def hub_offline(w: World) -> None:
    """A Hub name that is neither cached nor reachable."""
    _offline(lambda w: train(w.glue_cfg("model.pretrained=alphavil-tests/not-a-cached-model")))(w)


def resume(*overrides: str, breaking: Callable[[World], None] = lambda w: None) -> Callable[[World], None]:
    """Resume from the (possibly broken) checkpoint with ``overrides``."""

    def run(w: World) -> None:
        breaking(w)
        train(w.mnist_cfg("trainer.max_epochs=2", f"ckpt_path={w.checkpoint}", *overrides))

    return run


def mnist_file(name: str) -> Callable[[World], Path]:
    return lambda w: w.mnist / "mnist" / name


def truncate(path_of: Callable[[World], Path], keep: float = 0.5) -> Callable[[World], None]:
    def cut(w: World) -> None:
        path = path_of(w)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return cut


def replace_with(path_of: Callable[[World], Path], content: bytes) -> Callable[[World], None]:
    return lambda w: path_of(w).write_bytes(content)


def remove(path_of: Callable[[World], Path]) -> Callable[[World], None]:
    return lambda w: path_of(w).unlink()


def rename_column(w: World) -> None:
    for split in ("train", "validation"):
        frame = pd.read_parquet(w.parquet("rte", split))
        frame.rename(columns={"sentence1": "premise"}).to_parquet(w.parquet("rte", split))


def edit_parquet(task: str, split: str, column: str, row: int | None, value) -> Callable[[World], None]:
    """Set ``column`` at ``row`` (every row: ``None``) of a GLUE split to ``value``."""

    def edit(w: World) -> None:
        frame = pd.read_parquet(w.parquet(task, split))
        if not isinstance(value, float):  # a string or an int in a column of another type
            frame[column] = frame[column].astype(object)
        frame.loc[frame.index if row is None else [row], column] = value
        frame.to_parquet(w.parquet(task, split))

    return edit


def swap_mnist(w: World) -> None:
    folder = w.mnist / "mnist"
    for kind in ("images-idx3", "labels-idx1"):
        train, test = folder / f"train-{kind}-ubyte.gz", folder / f"t10k-{kind}-ubyte.gz"
        train.rename(folder / "swap.gz")
        test.rename(train)
        (folder / "swap.gz").rename(test)


def idx_with_wrong_size(w: World) -> None:
    path = w.mnist / "mnist" / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw + b"\x01\x02"))


def crafted_checkpoint(w: World) -> None:
    class Payload:
        def __reduce__(self):
            return (open, (str(w.tmp / "pwned"), "w"))

    torch.save({"state_dict": Payload()}, w.checkpoint)


def foreign_checkpoint(w: World) -> None:
    torch.save({"state_dict": {}, "epoch": 0, "global_step": 1}, w.checkpoint)


def best_checkpoint_gone(w: World) -> None:
    ckpt = torch.load(w.checkpoint, weights_only=True)
    for state in ckpt["callbacks"].values():
        if state.get("best_model_path", "").rsplit("/", 1)[-1].startswith("best-"):
            moved = w.tmp / "elsewhere" / Path(state["best_model_path"]).name
            state["best_model_path"] = str(moved)  # recorded where no file is, and none beside the checkpoint
    torch.save(ckpt, w.checkpoint)


def sigterm_in_epoch_one(w: World) -> None:
    class SigtermAt(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 0:
                os.kill(os.getpid(), signal.SIGTERM)

    train(w.mnist_cfg("trainer.max_epochs=3"), callbacks=[SigtermAt()])


LABELS = "train-labels-idx1-ubyte.gz"
IMAGES = "train-images-idx3-ubyte.gz"
CASES: list[tuple[str, Callable[[World], None], str]] = [
    # configs: unknown names and keys
    ("method-unknown", config("method=alphavill"), "Could not find 'method/alphavill'"),
    ("task-unknown", config("task=multimnist_lft"), "Could not find 'task/multimnist_lft'"),
    ("method-key-of-another-method", config("method.alpha_lr=0.1"), "Could not override 'method.alpha_lr'"),
    ("plus-typo-uniform", config("+method.alpha_lr=0.1"), "method.alpha_lr: not an option of method"),
    ("plus-typo-single-task", config("method=single_task", "+method.rho=0.5"), "method.rho: not an option"),
    ("plus-typo-alphavil", config("method=alphavil", "+method.alpha_stepz=3"), "method.alpha_stepz: not an option"),
    ("plus-typo-trainer", config("+trainer.gpus=1"), "trainer.gpus: not an option of trainer"),
    ("plus-typo-task", config("+task.target_task=right"), "task.target_task: not an option of task"),
    # configs: tasks
    ("target-outside-group", config("task.target=middle"), "task.target='middle' is not in task group 'multimnist'"),
    ("target-also-auxiliary", config("task.auxiliaries=[left]"), "contains the target 'left'"),
    ("auxiliary-duplicated", config("task.auxiliaries=[right,right]"), "has duplicates"),
    ("auxiliary-of-another-group", config("task.auxiliaries=[rte]"), "'rte', which is not in task group"),
    ("glue-target-from-multimnist", glue_config("task.target=left"), "task.target='left' is not in task group 'glue'"),
    ("glue-auxiliaries-not-a-list", glue_config("task.auxiliaries=mrpc"), "must be a list of tasks or auto"),
    ("train-examples-unknown-task", config("task.train_examples={middle: 10}"), "train_examples has 'middle'"),
    ("train-examples-zero", config("task.train_examples={left: 0}"), "train_examples.left=0"),
    # configs: values
    ("lr-nan", config("model.optimizer.lr=nan"), "lr=nan: must be a positive, finite number"),
    ("lr-inf", config("model.optimizer.lr=inf"), "lr=inf: must be a positive, finite number"),
    ("lr-negative", config("model.optimizer.lr=-0.1"), "lr=-0.1: must be a positive"),
    ("lr-schedule-unknown", config("model.lr_schedule.kind=cosine"), "kind='cosine': must be one of constant, linear"),
    ("lr-warmup-whole-run", config("model.lr_schedule.kind=linear", "model.lr_schedule.warmup=1"), "warmup=1.0: must"),
    ("batch-size-zero", config("task.batch_size=0"), "batch_size=0: must be a positive"),
    ("dev-fraction-one", config("task.dev_fraction=1"), "dev_fraction=1: nothing would be left to train on"),
    ("dev-fraction-zero", config("task.dev_fraction=0"), "dev_fraction=0.0: must be a fraction"),
    (
        "logger-not-a-logger",
        config("+logger.x={_target_: shutil.copyfile, src: /etc/hostname, dst: /tmp/alphavil_copied}"),
        "logger.x._target_=shutil.copyfile: must name a Lightning Logger class",
    ),
    # configuration is data: a _target_ only where the framework builds an object, and of the kind expected
    (
        "target-nested-in-logger",
        config("+logger.x={_target_: pytorch_lightning.loggers.CSVLogger, save_dir: {_target_: shutil.copyfile}}"),
        "logger.x.save_dir._target_=shutil.copyfile: a _target_ here would be built",
    ),
    (
        "target-nested-in-task-entry",
        glue_config("+task.tasks.rte.extra={_target_: shutil.copyfile}"),
        "task.tasks.rte.extra._target_=shutil.copyfile: a _target_ here",
    ),
    ("target-optimizer", config("model.optimizer._target_=shutil.copyfile"), "must name a torch.optim.Optimizer"),
    ("target-trainer", config("trainer._target_=shutil.copyfile"), "must name pytorch_lightning.Trainer"),
    (
        "target-method",
        config("method._target_=shutil.copyfile"),
        "method._target_=shutil.copyfile: must name a weighting",
    ),
    ("target-task", config("task._target_=shutil.copyfile"), "task._target_=shutil.copyfile: must name a DataModule"),
    ("target-model", config("model.net._target_=os.system"), "model.net._target_=os.system: must name a model builder"),
    ("seed-too-large", config("seed=4294967296"), "seed=4294967296: must be an integer in [0, 2**32)"),
    # no option silently ignored
    ("top-level-typo", config("+sed=3"), "sed: not an option (the top-level options"),
    ("fraction-without-its-rule", config("task.budget_fraction=0.3"), "budget_fraction=0.3 is read only by budget=fr"),
    ("temperature-without-its-rule", config("task.temperature=4"), "temperature=4.0 is read only by budget=temp"),
    ("counts-without-their-rule", config("task.budget_examples={right: 10}"), "budget_examples is read only by budg"),
    # a learned weight cannot silently leave its range: option domains that exclude a certain outcome
    ("gradnorm-lr-divergent", config("method=gradnorm", "method.lr=1e30"), "lr=1e+30: must be at most 1"),
    (
        "gradnorm-floor-above-mean",
        config("method=gradnorm", "method.min_weight=100"),
        "min_weight=100.0: must be below",
    ),
    ("auto-lambda-lr-divergent", config("method=auto_lambda", "method.lr=1e30"), "lr=1e+30: must be at most 1"),
    ("hydalearn-lookahead-divergent", config("method=hydalearn", "method.lookahead_lr=1e30"), "must be at most 1"),
    ("ol-aux-beta-divergent", config("method=ol_aux", "method.beta=1e30"), "beta=1e+30: must be at most 1"),
    ("alphavil-alpha-max-absurd", config("method=alphavil", "method.alpha_max=1e300"), "must be at most 100"),
    ("uncertainty-init-absurd", config("method=uncertainty", "method.init_log_variance=1000"), "within [-20, 20]"),
    ("diw-bandwidth-underflows", config("method=diw", "method.kernel_bandwidth=1e-300"), ">= 1e-6"),
    (
        "task-name-a-path",
        text_run(lambda e, f: e.__setitem__("x/y", e.pop("score")), task="text"),
        "a task named 'x/y': a task name must be an identifier",
    ),
    ("run-folder-busy", mnist_run("ckpt_path=auto", breaking=lambda w: held_by_another(w.tmp / "run")), "is in use by"),
    ("callback-without-target", config("+callbacks.x={every: 1}"), "callbacks.x: each entry needs a _target_"),
    ("budget-unknown", config("task.budget=random"), "budget='random': must be one of equal"),
    ("batching-unknown", config("task.batching=random"), "batching='random': must be one of mixed"),
    ("batching-sampled-gradient-method", config("method=pcgrad", "task.batching=sampled"), "method PCGrad takes mixed"),
    ("budget-fraction-zero", config("task.budget_fraction=0"), "budget_fraction=0.0: must be a fraction"),
    ("budget-counts-missing", config("task.budget=counts"), "budget=counts needs budget_examples for every auxiliary"),
    ("budget-examples-not-aux", config("task.budget_examples={left: 5}"), "budget_examples has 'left', which is not"),
    ("dev-examples-zero", config("task.dev_examples=0"), "dev_examples=0: must be a positive"),
    ("temperature-zero", config("task.temperature=0"), "temperature=0.0: must be a positive"),
    ("temperature-below-one", config("task.temperature=0.001"), "temperature=0.001: must be >= 1"),
    ("max-train-zero", config("task.max_train_examples=0"), "max_train_examples=0: must be a positive"),
    ("seed-negative", config("seed=-1"), "seed=-1: must be an integer in [0, 2**32)"),
    ("epochs-zero", config("trainer.max_epochs=0"), "max_epochs=0: must be a positive"),
    ("dropout-one", config("model.net.dropout=1"), "dropout=1.0: must be in [0, 1)"),
    ("alphavil-rho-gone", config("method=alphavil", "method.rho=0.5"), "method.rho"),
    ("alphavil-bounds-crossed", config("method=alphavil", "method.alpha_min=3"), "alpha_min=3.0: must be below"),
    ("alphavil-w-min-above-alpha-max", config("method=alphavil", "method.w_min=5"), "w_min=5.0: must be at most"),
    ("alphavil-alpha-lr-inf", config("method=alphavil", "method.alpha_lr=inf"), "alpha_lr=inf: must be a positive"),
    ("auto-lambda-init-negative", config("method=auto_lambda", "method.init=-1"), "init=-1.0: must be a positive"),
    ("diw-features-unknown", config("method=diw", "method.features=pixels"), "features='pixels': must be one of"),
    ("static-weight-negative", config("method=static", "method.weights={right: -1}"), "must be a number in [0, 10000]"),
    ("static-weight-huge", config("method=static", "method.weights={right: 1e30}"), "leaves the target nothing"),
    ("auto-lambda-init-huge", config("method=auto_lambda", "method.init=1e30"), "init=1e+30: must be at most 10000"),
    ("hydalearn-cap-huge", config("method=hydalearn", "method.max_weight=1e30"), "max_weight=1e+30: must be at most"),
    # configs: a model for the other task group
    ("text-model-on-images", config("model=minilm"), "the model reads text but task group 'multimnist' holds images"),
    (
        "image-model-on-text",
        lambda w: validate(compose_config(["task=glue_rte", "model=lenet"], w.tmp)),
        "text tasks need an encoder model",
    ),  # fmt: skip
    ("pooling-unknown", glue_config("model.net.pooling=max"), "pooling='max': must be one of cls, mean"),
    # data files
    ("mnist-file-missing", mnist_run(breaking=remove(mnist_file(LABELS))), f"MNIST file {LABELS} not found in"),
    ("mnist-truncated", mnist_run(breaking=truncate(mnist_file(IMAGES))), "is corrupt or truncated"),
    (
        "mnist-wrong-md5",
        mnist_run("task.verify_checksums=true", breaking=truncate(mnist_file(LABELS), 0.99)),
        "has md5",
    ),  # fmt: skip
    (
        "mnist-not-idx",
        mnist_run(breaking=replace_with(mnist_file(LABELS), gzip.compress(b"hello world"))),
        "bad magic number",
    ),  # fmt: skip
    ("mnist-size-mismatch", mnist_run(breaking=idx_with_wrong_size), "the file is corrupt or truncated"),
    ("dev-split-empty", mnist_run("task.dev_fraction=0.001"), "the dev split of 'left' has 0 example(s)"),
    ("glue-split-missing", glue_run(remove(lambda w: w.parquet("mrpc", "validation"))), r"mrpc (validation)"),
    (
        "glue-parquet-truncated",
        glue_run(truncate(lambda w: w.parquet())),
        "could not load GLUE rte (train) from",
    ),  # fmt: skip
    ("glue-column-renamed", glue_run(rename_column), "lacks the column(s) ['sentence1']"),
    (
        "glue-readme-names-a-gone-folder",
        glue_run(lambda w: shutil.rmtree(w.glue / "glue" / "cola")),
        "names folders that are not in",
    ),
    (
        "glue-label-nan",
        glue_run(edit_parquet("stsb", "train", "label", 3, float("nan")), "task.auxiliaries=[stsb]"),
        "stsb/train-00000-of-00001.parquet: column 'label', row 3: None is not a finite number",  # NaN reads as null
    ),
    (
        "glue-label-out-of-range",
        glue_run(edit_parquet("rte", "train", "label", 5, 7)),
        "rte/train-00000-of-00001.parquet: column 'label', row 5: 7 is not a class in 0..1",
    ),
    ("glue-test-unlabelled", glue_run(edit_parquet("rte", "validation", "label", None, -1)), "has no labels"),
    (
        "glue-text-empty",
        glue_run(edit_parquet("mrpc", "train", "sentence2", 2, "  ")),
        "column 'sentence2', row 2: the text is empty or missing",
    ),
    ("mnist-train-test-swapped", mnist_run(breaking=swap_mnist), "train and test look swapped"),
    (
        "glue-readme-missing",
        glue_run(remove(lambda w: w.glue / "glue" / "README.md")),
        "has no README.md with a `configs:` block",
    ),  # fmt: skip
    ("encoder-folder-missing", glue_run(lambda w: shutil.rmtree(w.encoder)), "encoder folder"),
    ("encoder-hub-offline", hub_offline, "from the Hugging Face Hub or its local cache"),
    (
        "encoder-weights-truncated",
        glue_run(truncate(lambda w: w.encoder / "model.safetensors")),
        "model.safetensors cannot be read",
    ),  # fmt: skip
    (
        "tokenizer-file-corrupt",
        glue_run(replace_with(lambda w: w.encoder / "tokenizer.json", b"{not json")),
        "tokenizer.json cannot be read",
    ),  # fmt: skip
    # your own text tasks (task=text, src/data/text.py): every fault names the task and the field
    (
        "text-file-missing",
        text_run(lambda e, f: e["stars"]["data_files"].update(train=str(f / "gone.csv"))),
        "task.tasks.stars.data_files.train: ",
    ),
    (
        "text-column-missing",
        text_run(lambda e, f: e["stars"].update(label="verdict")),
        "lacks the column(s) ['verdict'] named by its label field",
    ),
    (
        "text-label-outside-num-labels",
        text_run(lambda e, f: e["score"].update(kind="classification", num_labels=2)),
        r"score\.csv: column 'score', row 0: [\d.]+ is not a class in 0\.\.1",
    ),
    (
        "text-regression-label-not-a-number",
        text_run(
            lambda e, f: (edit_csv("score.csv", "score", 4, "unknown")(e, f), e["score"].update(kind="regression"))
        ),
        "task.tasks.score.label: row 4: 'unknown' is not a number (kind: regression)",
    ),
    (
        "text-numeric-labels-with-a-word",
        text_run(edit_csv("score.csv", "score", 4, "unknown")),
        "the labels look numeric, but row 4 holds 'unknown'",
    ),
    (
        "text-regression-label-nan",
        text_run(
            lambda e, f: (edit_csv("score.csv", "score", 2, float("nan"))(e, f), e["score"].update(kind="regression"))
        ),
        "column 'score', row 2: None is not a finite number",  # a CSV's NaN reads as null
    ),
    (
        "text-empty-text",
        text_run(edit_csv("stars_train.csv", "review", 3, "")),
        "column 'review', row 3: the text is empty",
    ),
    (
        "text-empty-split",
        text_run(lambda e, f: (f / "stars_test.csv").write_text("review,stars\n")),
        "task.tasks.stars (test) from",
    ),
    (
        "text-hub-dataset-offline",
        lambda w: _offline(
            text_run(lambda e, f: e.update(topic={"path": "alphavil-tests/no-such-set", "text": ["t"]}))
        )(w),
        "A Hub dataset needs the network or its local cache",
    ),
    (
        "text-name-of-a-glue-task",
        text_run(lambda e, f: e.update(rte=e.pop("score")), task="glue_rte"),
        "task.tasks names rte, a GLUE task already",
    ),
    # your own image tasks (task=images, src/data/images.py)
    ("images-file-missing", images_run(lambda f: (f / "img" / "7.png").unlink()), "column 'path', row 7: the image"),
    (
        "images-file-unreadable",
        images_run(lambda f: (f / "img" / "2.png").write_bytes(b"GIF89a broken")),
        "train.csv: row 2: the image",
    ),
    # checkpoints
    ("ckpt-missing", resume(breaking=remove(lambda w: w.checkpoint)), "no such file"),
    (
        "ckpt-text-file",
        resume(breaking=replace_with(lambda w: w.checkpoint, b"not a checkpoint\n")),
        "is not a checkpoint this framework can read",
    ),  # fmt: skip
    ("ckpt-truncated", resume(breaking=truncate(lambda w: w.checkpoint)), "is not a checkpoint this framework can"),
    ("ckpt-crafted-payload", resume(breaking=crafted_checkpoint), "weights_only"),
    ("ckpt-foreign", resume(breaking=foreign_checkpoint), "holds no record of the run"),
    ("resume-other-method", resume("method=alphavil"), "method._target_: 'src.methods.uniform.Uniform' in the"),
    ("resume-other-target", resume("task.target=right", "task.auxiliaries=[left]"), "task.target: 'left' in the"),
    ("resume-other-lr", resume("model.optimizer.lr=0.01"), "model.optimizer.lr: 0.001 in the checkpoint, 0.01 now"),
    ("resume-other-batch", resume("task.batch_size=16"), "task.batch_size: 32 in the checkpoint, 16 now"),
    ("resume-best-gone", resume(breaking=best_checkpoint_gone), "best checkpoint .* no longer exists"),
    # loss-conditional training (method=conditional) and the step-matched batching
    ("conditioned-other-method", config("model.net.condition.enabled=true"), "method Uniform draws no weights"),
    ("conditional-empty-space", config("method=conditional", "method.space.weights=[]"), "an empty grid leaves λ"),
    (
        "conditional-reversed-range",
        config("method=conditional", "method.space.low=3", "method.space.high=1"),
        "0 < low < high",
    ),  # fmt: skip
    (
        "conditional-negative-range",
        config("method=conditional", "method.space.low=-1", "method.space.high=1"),
        "0 < low < high",
    ),  # fmt: skip
    (
        "conditional-reference-outside",
        mnist_run("method=conditional", "method.space.weights=[0,0.3]"),
        "method.reference.right=1 is outside the space",
    ),  # fmt: skip
    (
        "conditional-unknown-site",
        mnist_run("method=conditional", "model.net.condition.sites=[conv9]"),
        "'conv9' is not a site",
    ),  # fmt: skip
    (
        "matched-batch-too-small",
        config("task.batching=matched", "task.batch_size=1"),
        "batching=matched splits each step's batch_size=1 among 2 tasks",
    ),  # fmt: skip
    # options that cannot act, searches' folders, locks
    ("forkmerge-alphas-domain", config("method=forkmerge", "method.alphas=[1e30]"), "numbers in [0, 1]"),
    ("search-min-epochs-cannot-act", search_run("search=halving", "search.min_epochs=5"), "no rung could stop"),
    (
        "search-hybrid-two-batchings",
        search_run("search=hybrid", "search.space.batching=[sampled,mixed]"),
        "search.space.batching must hold one",
    ),  # fmt: skip
    (
        "search-trials-without-record",
        search_run("search=grid", breaking=trial_without_record),
        "but no search_record.json",
    ),  # fmt: skip
    ("lock-unreadable", mnist_run(breaking=unreadable_lock), "cannot be read): delete it if no run uses the folder"),
    ("finished-no-checkpoint-more-epochs", more_epochs_without_checkpoints, "no last.ckpt to continue from (its"),
    (
        "text-head-of-another-kind",
        text_run(lambda e, f: e["score"].update(head="stars")),
        "stars has 3 outputs, score 1",
    ),
    (
        "text-label-names-leave-out-a-class",
        text_run(lambda e, f: e["stars"].update(label_names=["bad"])),
        "label_names=['bad']: a classification task needs two classes or more, and the train split holds 'bad', 'good'",
    ),  # fmt: skip
    # signals
    ("sigterm", sigterm_in_epoch_one, "stopped by SIGTERM in epoch 1"),
]
REGEX = {
    "resume-best-gone",
    "text-label-outside-num-labels",
}  # phrases that are patterns; the rest are matched literally


@pytest.mark.parametrize(("case", "phrase"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_with_a_message_that_names_it(case, phrase, world, caplog, request):
    with caplog.at_level(logging.ERROR), pytest.raises(BaseException) as failed:
        case(world)
    assert not isinstance(failed.value, KeyboardInterrupt)
    text = f"{failed.value}\n{caplog.text}"
    pattern = phrase if request.node.callspec.id in REGEX else None
    if pattern:
        import re

        assert re.search(pattern, text), text[-2000:]
    else:
        assert phrase in text, text[-2000:]
    assert not (world.tmp / "pwned").exists()


def test_every_catalogue_case_has_a_name_of_its_own():
    assert len({c[0] for c in CASES}) == len(CASES)  # each case named once


def test_the_docs_count_the_catalogue_as_it_is():
    import re

    from tests.conftest import ROOT

    text = "".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    counts = re.findall(r"(\d+) bad inputs", text)
    assert counts and set(counts) == {str(len(CASES))}
