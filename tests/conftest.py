"""Shared fixtures: composed configs, a tiny MNIST written as IDX files, the real data when present."""

from __future__ import annotations

import functools
import gzip
import os
import signal
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import src.config  # noqa: F401  (registers schemas and resolvers)
from src.runtime import pin

# Tests never download: the Hugging Face libraries read only local folders and caches.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

# Under xdist every worker gets its share of the cores: torch's default (one thread per core in each worker)
# oversubscribes them, and OpenMP's spinning threads then make the tiny runs ten times slower. The subprocesses a
# test starts (sweeps, the CLI, gloo processes) inherit the same share.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    share = max(1, (os.cpu_count() or 1) // workers)
    os.environ.setdefault("OMP_NUM_THREADS", str(share))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
REAL_DATA = Path(os.environ["ALPHAVIL_DATA_DIR"]) if os.environ.get("ALPHAVIL_DATA_DIR") else None


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzipped IDX file, the format MNIST ships in."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """Tiny MNIST-shaped IDX files: each digit class is a distinct blob, so a LeNet can learn it."""
    rng = np.random.default_rng(seed)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i, y in enumerate(labels):
            r, c = divmod(int(y), 5)
            images[i, 4 + 10 * r : 12 + 10 * r, 2 + 5 * c : 6 + 5 * c] = 255
        images = np.clip(images + rng.integers(0, 40, images.shape), 0, 255)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(autouse=True)
def signal_handlers_as_they_were():
    """Each test leaves SIGINT and SIGTERM as it found them: Lightning ignores SIGINT from a Ctrl-C it caught on,
    and a library may install its own, so a later test in the same xdist worker would not see its own signal."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in before.items():
        if signal.getsignal(s) is not handler and handler is not None:
            signal.signal(s, handler)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return make_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture
def real_data() -> Path:
    if REAL_DATA is None or not REAL_DATA.exists():
        pytest.skip("set ALPHAVIL_DATA_DIR to a folder with the local data copies (CI uses ../shared/data)")
    return REAL_DATA


def config_options(group: str) -> list[str]:
    """Every option of a config group: its YAML files and the names registered in the ConfigStore."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        found = GlobalHydra.instance().config_loader().get_group_options(group)
    GlobalHydra.instance().clear()
    return sorted(o for o in found if not o.startswith("base_"))  # base_*: the schemas YAMLs extend


METHODS = config_options("method")
# The suites run over every method keep one method of each family in the fast set (fixed weights, αVIL's blocks
# and α-steps, a dev-matching method, a gradient rule, ForkMerge's branches, the conditional model); the others
# run in the slow set, which CI also runs.
FAST_METHODS = ("alphavil", "static", "uniform", "diw", "pcgrad", "forkmerge", "conditional")
METHOD_CASES = [m if m in FAST_METHODS else pytest.param(m, marks=pytest.mark.slow) for m in METHODS]


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` as ``python -m src.run`` would, pinned to its own runtime (src/runtime.py):
    no global of Hydra's is set, as none is for a run."""
    GlobalHydra.instance().clear()
    if output_dir is not None:
        overrides = [*overrides, f"paths.output_dir={output_dir}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    return pin(cfg)


def method_class(method: str) -> type:
    """The class ``method=<method>`` builds."""
    return method_classes()[method]


@functools.cache
def method_classes() -> dict[str, type]:
    """Every method option's class, from its own config file (``method/<name>`` with its defaults), composed once
    per process: a whole config's compose is a fair part of a second, and lists held to the classes (one of them
    at collection) ask for every method."""
    from hydra.utils import get_class

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        targets = {m: compose(f"method/{m}").method._target_ for m in METHODS}
    GlobalHydra.instance().clear()
    return {m: get_class(target) for m, target in targets.items()}


# Tests call train() several times in one folder; each call starts afresh unless a test resumes on purpose
# (ckpt_path=auto, the default, would continue from the folder's last.ckpt).
TINY = [
    "ckpt_path=null",
    "task.max_train_examples=160",
    "task.max_eval_examples=60",
    "task.batch_size=32",
    "task.verify_checksums=false",
    "task.download=false",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",  # the same device on any machine (trainer.accelerator is auto by default)
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
]


@pytest.fixture
def tiny_cfg(tiny_data, tmp_path) -> Callable[..., DictConfig]:
    """A composed config on the tiny MNIST, writing into ``tmp_path``; extra overrides as arguments."""

    def make(*overrides: str) -> DictConfig:
        return compose_config(
            [*TINY, f"paths.data_dir={tiny_data}", f"paths.cache_dir={tmp_path}/cache", *overrides],
            output_dir=tmp_path / "run",
        )

    return make


# --- GLUE fixtures: a tiny BERT and a few rows of each task, in the Hub's layout -----------------
GLUE_COLUMNS = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
WORDS = "the a cat dog sat ran on mat is not good bad very big small red blue it was".split()


def make_glue(root: Path, rows: int = 40, skip: tuple[tuple[str, str], ...] = (("qnli", "train"),)) -> Path:
    """A few random rows of every GLUE task as parquet in the Hub's layout, with the README's configs."""
    import pandas as pd

    rng = np.random.default_rng(0)
    folder = root / "glue"
    configs = []
    for task, columns in GLUE_COLUMNS.items():
        splits = ["train", "validation_matched", "validation_mismatched"] if task == "mnli" else ["train", "validation"]
        splits = [s for s in splits if (task, s) not in skip]
        for split in splits:
            frame = {c: [" ".join(rng.choice(WORDS, rng.integers(3, 9))) for _ in range(rows)] for c in columns}
            if task == "stsb":
                frame["label"] = rng.uniform(0, 5, rows).astype(np.float32)
            else:
                frame["label"] = rng.integers(0, 3 if task == "mnli" else 2, rows)
            frame["idx"] = np.arange(rows, dtype=np.int32)
            (folder / task).mkdir(parents=True, exist_ok=True)
            pd.DataFrame(frame).to_parquet(folder / task / f"{split}-00000-of-00001.parquet")
        files = "".join(f"  - split: {s}\n    path: {task}/{s}-*\n" for s in splits)
        configs.append(f"- config_name: {task}\n  data_files:\n{files}")
    (folder / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n")
    return root


def make_tiny_encoder(folder: Path) -> Path:
    """A two-layer BERT (hidden 32) and a WordPiece tokenizer over a small vocabulary, saved as a HF folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_glue(tmp_path_factory) -> Path:
    root = make_glue(tmp_path_factory.mktemp("glue_data"))
    make_tiny_encoder(root / "models" / "tiny-bert")
    return root


GLUE_TINY = [
    "ckpt_path=null",
    "model=minilm",  # the local-folder model config, pointed at the tiny BERT below
    "task.max_train_examples=24",
    "task.max_eval_examples=16",
    "task.batch_size=8",
    "model.max_length=32",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",  # GLUE's default is auto (bf16 on a CPU with AVX512-BF16): exact float32 here
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
]


@pytest.fixture
def glue_cfg(tiny_glue, tmp_path) -> Callable[..., DictConfig]:
    """A composed GLUE config on the tiny fixtures, writing into ``tmp_path``."""

    def make(*overrides: str) -> DictConfig:
        return compose_config(
            [
                *GLUE_TINY,
                f"paths.data_dir={tiny_glue}",
                f"paths.cache_dir={tmp_path}/cache",
                f"model.pretrained={tiny_glue}/models/tiny-bert",
                *overrides,
            ],
            output_dir=tmp_path / "run",
        )

    return make


# Tests that train (or build data for a run) use these fixtures; the rest are unit tests on tensors, configs and
# files: `make test-unit` runs those alone, in well under a minute.
TRAINING_FIXTURES = {"tiny_data", "tiny_cfg", "tiny_glue", "glue_cfg", "real_data", "world", "originals"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trains)
