"""GLUE: loading from a local Hub-layout folder, tokenization cache, metrics, every method end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from src.config import ConfigError, validate
from src.data.base import DataError
from src.data.glue import TASKS, GLUEDataModule
from src.data.schedule import DEV
from src.data.tasks import headline_value
from src.train import build, train
from tests.conftest import METHODS, compose_config


def reference(task: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    if task == "stsb":
        return {"pearson": pearsonr(preds, labels)[0], "spearman": spearmanr(preds, labels)[0]}
    out = {"accuracy": accuracy_score(labels, preds)}
    if task == "cola":
        return {"mcc": matthews_corrcoef(labels, preds)}
    if task in ("mrpc", "qqp"):
        out["f1"] = f1_score(labels, preds)
    return out


@pytest.mark.parametrize("task", list(TASKS))
def test_metrics_match_sklearn_and_scipy(task):
    spec = TASKS[task]
    rng = np.random.default_rng(len(task))
    if spec.regression:
        labels = rng.uniform(0, 5, 50).astype(np.float32)
        preds = (labels + rng.normal(0, 1.5, 50)).astype(np.float32)
    else:
        labels = rng.integers(0, spec.num_outputs, 50)
        preds = np.where(rng.random(50) < 0.7, labels, rng.integers(0, spec.num_outputs, 50))
    metrics = spec.make_metrics()
    metrics.update(torch.tensor(preds), torch.tensor(labels))
    ours = {k: float(v) for k, v in metrics.compute().items()}
    expected = reference(task, preds, labels)
    assert ours.keys() == expected.keys()
    for k in expected:
        assert ours[k] == pytest.approx(expected[k], abs=1e-5), k
    assert headline_value(spec, ours) == pytest.approx(np.mean([expected[m] for m in spec.metrics]), abs=1e-5)


@pytest.mark.parametrize(
    "preds",
    [np.ones(300, dtype=int), np.zeros(300, dtype=int), np.r_[np.zeros(3, dtype=int), np.ones(297, dtype=int)]],
    ids=["all-ones", "all-zeros", "three-zeros"],
)
def test_cola_mcc_of_near_constant_predictions_matches_sklearn(preds):
    labels = np.r_[np.zeros(90, dtype=int), np.ones(210, dtype=int)]  # CoLA's 30/70 split
    metrics = TASKS["cola"].make_metrics()
    metrics.update(torch.tensor(preds), torch.tensor(labels))
    assert float(metrics.compute()["mcc"]) == pytest.approx(matthews_corrcoef(labels, preds), abs=1e-6)


def _dm(tiny_glue, tmp_path, **kw):
    kw = {
        "target": "rte",
        "tokenizer": str(tiny_glue / "models" / "tiny-bert"),
        "data_dir": str(tiny_glue),
        "cache_dir": str(tmp_path),
        "max_length": 32,
        **kw,
    }
    return GLUEDataModule(**kw)


def test_auto_auxiliaries_are_the_available_tasks(tiny_glue, tmp_path):
    dm = _dm(tiny_glue, tmp_path)
    assert dm.source == str(tiny_glue / "glue")
    # no qnli (no train split), no wnli (never unless named: its train set is adversarial to its test set)
    assert [t.name for t in dm.tasks] == ["rte", "cola", "sst2", "mrpc", "qqp", "stsb", "mnli"]


def test_a_glue_target_trains_beside_its_related_tasks_for_three_epochs_by_default():
    from tests.conftest import compose_config

    rte, cola = compose_config(["task=glue_rte"]), compose_config(["task=glue_cola"])
    assert list(rte.task.auxiliaries) == ["mrpc", "stsb"] and list(cola.task.auxiliaries) == ["sst2"]
    assert rte.trainer.max_epochs == 3
    assert list(compose_config(["task=glue_rte", "task.auxiliaries=[wnli]"]).task.auxiliaries) == ["wnli"]


def test_missing_split_is_named_before_training(tiny_glue, tmp_path):
    with pytest.raises(DataError, match=r"qnli \(train\)") as e:
        _dm(tiny_glue, tmp_path, auxiliaries=["mrpc", "qnli"])
    assert "nyu-mll/glue" in str(e.value)


def test_splits_tokenization_and_cache(tiny_glue, tmp_path, monkeypatch):
    dm = _dm(tiny_glue, tmp_path, auxiliaries=["stsb", "mnli"], dev_fraction=0.25)
    dm.setup()
    assert dm.sizes() == {"rte": 30, "stsb": 40, "mnli": 40, "__dev__": 10}
    assert dm.test_tasks() == ["rte", "stsb", "mnli", "mnli_mm"] and dm.head_of("mnli_mm") == "mnli"
    batch = dm.train_sets["stsb"].batch(torch.arange(4))
    assert batch["input_ids"].shape[0] == 4 and batch["labels"].dtype == torch.float32
    assert batch["input_ids"].shape[1] <= 32 and (batch["input_ids"][:, 0] == 2).all()  # [CLS] first
    pair = dm.train_sets["rte"].batch(torch.arange(3))
    assert ((pair["input_ids"] == 3).sum(1) == 2).all()  # sentence pairs: two [SEP]
    assert list((tmp_path / "glue").glob("rte_train_*.arrow"))

    import datasets

    calls = []
    original = datasets.Dataset.map
    monkeypatch.setattr(datasets.Dataset, "map", lambda self, *a, **k: calls.append(k) or original(self, *a, **k))
    _dm(tiny_glue, tmp_path, auxiliaries=["stsb", "mnli"]).setup()
    assert calls and all(k["load_from_cache_file"] for k in calls)
    # named by the content key: `datasets` would otherwise hash the tokenizer in `encode`'s closure (seconds a split)
    assert all(
        k["new_fingerprint"] == __import__("pathlib").Path(k["cache_file_name"]).stem.rsplit("_", 1)[1] for k in calls
    )
    assert all(__import__("pathlib").Path(k["cache_file_name"]).exists() for k in calls)


def test_glue_needs_an_encoder(tmp_path):
    cfg = compose_config(["task=glue_rte", "model=lenet"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="need an encoder"):
        validate(cfg)


def test_target_outside_glue_is_rejected(tmp_path):
    cfg = compose_config(["task=glue_rte", "task.target=left"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="task.target='left' is not in task group 'glue'"):
        validate(cfg)


@pytest.mark.slow  # ~5 s a method on the tiny BERT: the fast suite runs GLUE end to end in the tests below
@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_on_glue_rte(method, glue_cfg, tmp_path):
    train(glue_cfg("task=glue_rte", f"method={method}", "task.auxiliaries=[mrpc,stsb]"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["target"] == "rte" and saved["tasks"] == ["rte", "mrpc", "stsb"]
    assert saved["target_metric"] == "accuracy" and saved["target_test"] == saved["test"]["rte"]["accuracy"]
    assert set(saved["test"]) == {"rte", "mrpc", "stsb"} and "f1" in saved["test"]["mrpc"]
    assert len(saved["weight_history"]) == 2
    best = max(range(2), key=lambda e: saved["dev_history"][e])
    assert saved["tested_epoch"] == saved["best_epoch"] == best  # the best dev epoch's checkpoint was tested


def test_stsb_target_is_regression_with_its_headline(glue_cfg):
    results = train(glue_cfg("task=glue_stsb", "method=uniform", "task.auxiliaries=[rte]", "trainer.max_epochs=1"))
    assert results["target_metric"] == "avg(pearson,spearman)"
    assert set(results["test"]["stsb"]) == {"pearson", "spearman", "score"}


def test_mnli_reports_mismatched_too(glue_cfg):
    results = train(glue_cfg("task=glue_mnli", "method=single_task", "task.auxiliaries=[]", "trainer.max_epochs=1"))
    assert set(results["test"]) == {"mnli", "mnli_mm"}


def test_regression_head_has_one_output(glue_cfg):
    _, module, _ = build(glue_cfg("task=glue_stsb", "method=uniform", "task.auxiliaries=[cola]"))
    assert module.model.heads["stsb"][-1].out_features == 1 and module.model.heads["cola"][-1].out_features == 2


@pytest.mark.slow
def test_real_rte_with_minilm(real_data, tmp_path):
    """One short real run: RTE with an MRPC auxiliary, the local MiniLM encoder, a few steps."""
    if not (real_data / "models" / "all-MiniLM-L6-v2").exists() or not (real_data / "glue" / "rte").exists():
        pytest.skip("the local GLUE copy or the MiniLM encoder is not in ALPHAVIL_DATA_DIR")
    cfg = compose_config(
        [
            "task=glue_rte",
            "model=minilm",
            "method=alphavil",
            "task.auxiliaries=[mrpc]",
            f"paths.data_dir={real_data}",
            f"paths.cache_dir={tmp_path}/cache",
            "task.max_train_examples=32",
            "task.max_eval_examples=32",
            "model.max_length=64",
            "method.alpha_steps=2",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "logger=none",
        ],
        output_dir=tmp_path / "run",
    )
    results = train(cfg)
    assert results["tasks"] == ["rte", "mrpc"] and results["target_test"] == results["test"]["rte"]["accuracy"]
    assert set(results["alpha_history"][0]) == {"rte", "mrpc"}


def test_an_encoder_stored_in_half_precision_trains_in_float32(tmp_path):
    """transformers 5 loads a checkpoint in the dtype it was saved in; float16 parameters diverge under
    bf16-mixed training (seen on a GPU: a NaN loss in the first epoch), so the trunk is float32 as built."""
    from transformers import BertModel

    from src.models.encoder import EncoderTrunk
    from tests.conftest import make_tiny_encoder

    folder = make_tiny_encoder(tmp_path / "bert")
    BertModel.from_pretrained(folder).half().save_pretrained(folder)
    trunk = EncoderTrunk(str(folder))
    assert {p.dtype for p in trunk.parameters()} == {torch.float32}


def test_glue_defaults_to_the_hardwares_fast_path():
    """task=glue_* composes trainer=auto: a GPU when there is one, bf16 where the hardware computes it."""
    cfg = compose_config(["task=glue_rte"])
    assert cfg.trainer.accelerator == "auto" and cfg.trainer.precision == "auto"
    assert compose_config(["task=glue_rte", "trainer=gpu"]).trainer.precision == "bf16-mixed"
    assert compose_config([]).trainer.precision == "32-true"  # MultiMNIST keeps float32
    assert compose_config([]).trainer.accelerator == "auto"


def test_precision_auto_resolves_by_the_cpus_flags(monkeypatch):
    import src.hardware as run

    assert run.cpu_has_bf16("processor : 0\nflags : fpu sse avx512f avx512_bf16 amx_tile\n")
    assert run.cpu_has_bf16("flags : fpu amx_bf16\n")
    assert not run.cpu_has_bf16("flags : fpu sse avx512f\n")
    monkeypatch.setattr(run, "cpu_has_bf16", lambda: True)
    assert run.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(run, "cpu_has_bf16", lambda: False)
    assert run.resolve_precision("auto", "cpu") == "32-true"
    assert run.resolve_precision("16-mixed", "cpu") == "16-mixed"  # any other value is Lightning's


@pytest.mark.slow  # bf16 autocast on a tiny BERT is slow on a CPU (half a minute)
def test_a_glue_run_records_the_precision_it_resolved(glue_cfg):
    from src.hardware import cpu_has_bf16

    results = train(glue_cfg("task=glue_rte", "method=single_task", "trainer.precision=auto", "trainer.max_epochs=1"))
    assert results["precision"] == ("bf16-mixed" if cpu_has_bf16() else "32-true")


def test_group_by_length_keeps_every_step_and_budget_and_regroups_by_length():
    from src.data.schedule import EpochData, epoch_generator, group_by_length, mixed_plan

    sizes = {"t": 96, "a": 300, DEV: 40}
    data = EpochData(sizes, batch_size=8, budget={"t": 96, "a": 96})
    steps = mixed_plan(data, ["t", "a"], epoch_generator(0, 0), with_dev=True)
    lengths = {k: torch.randint(5, 120, (n,), generator=torch.Generator().manual_seed(1)) for k, n in sizes.items()}
    grouped = group_by_length(steps, lengths, window=6, generator=torch.Generator().manual_seed(3))
    again = group_by_length(steps, lengths, window=6, generator=torch.Generator().manual_seed(3))
    assert [s.indices.keys() for s in grouped] == [s.indices.keys() for s in steps]
    for before, after, same in zip(steps, grouped, again):
        for key in before.indices:
            assert len(after.indices[key]) == len(before.indices[key])
            assert torch.equal(after.indices[key], same.indices[key])  # seeded: reproducible

    def pool(plan, key, start):
        return sorted(torch.cat([s.indices[key] for s in plan[start : start + 6]]).tolist())

    for start in range(0, len(steps), 6):  # the same examples inside each window, only regrouped
        for key in sizes:
            assert pool(grouped, key, start) == pool(steps, key, start)

    def padding(plan):  # padded tokens: what grouping saves
        return sum(int(len(i) * lengths[k][i].max() - lengths[k][i].sum()) for s in plan for k, i in s.indices.items())

    assert padding(grouped) < 0.5 * padding(steps)


def test_glue_groups_batches_by_length_by_default(glue_cfg):
    dm, module, trainer = build(glue_cfg("task=glue_rte", "method=uniform", "task.auxiliaries=[mrpc]"))
    assert dm.group_by_length == 50
    dm.setup()
    lengths = dm.lengths()
    assert set(lengths) == {"rte", "mrpc", DEV}
    for i in range(5):  # the tokens of one example: its attention mask's sum when batched alone
        one = dm.train_sets["rte"].batch(torch.tensor([i]))
        assert int(one["attention_mask"].sum()) == int(lengths["rte"][i])
    with pytest.raises(ConfigError, match="group_by_length=0"):
        validate(glue_cfg("task=glue_rte", "task.group_by_length=0"))


def test_group_by_length_never_regroups_across_blocks():
    from src.data.schedule import Step, group_by_length

    steps = [Step(indices={"t": torch.tensor([2 * i, 2 * i + 1])}, block="t" if i < 3 else "a") for i in range(6)]
    lengths = {"t": torch.arange(12, 0, -1)}
    grouped = group_by_length(steps, lengths, window=50, generator=torch.Generator().manual_seed(0))
    first = sorted(torch.cat([s.indices["t"] for s in grouped[:3]]).tolist())
    assert first == [0, 1, 2, 3, 4, 5]  # the first block's examples stay in the first block


def test_auto_auxiliaries_are_the_same_for_a_run_a_search_and_the_schema(glue_cfg):
    """task.auxiliaries=auto is resolved by the task group's one rule: the DataModule a run builds, a search's
    space and the schema's checks see the same tasks (here every GLUE task with a train split but WNLI)."""
    from hydra.utils import instantiate

    from src.data.glue import GLUEDataModule
    from src.search.command import auxiliaries as _auxiliaries

    cfg = glue_cfg("task=glue_rte", "task.auxiliaries=auto")
    datamodule = instantiate(cfg.task)
    assert datamodule.auxiliaries == _auxiliaries(cfg)
    assert "qnli" not in datamodule.auxiliaries and "wnli" not in datamodule.auxiliaries  # no train split; WNLI
    schema = GLUEDataModule.resolve_auxiliaries(
        {"target": "rte", "auxiliaries": "auto", "source": "auto", "data_dir": cfg.paths.data_dir}
    )
    assert schema == datamodule.auxiliaries
