"""Your own text tasks from configuration alone (task=text, src/data/text.py): CSV tasks as a user writes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.config import ConfigError, validate
from src.data.base import DataError
from src.train import train
from tests.conftest import GLUE_TINY, ROOT, WORDS, compose_config


def write_tasks(folder: Path, rows: int = 48) -> dict[str, Path]:
    """Two CSV tasks: ``stars`` (string labels, train and test files) and ``score`` (a regression, one file)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)

    def text(n):
        return [" ".join(rng.choice(WORDS, rng.integers(3, 9))) for _ in range(n)]

    files = {}
    for split in ("train", "test"):
        n = rows if split == "train" else 20
        frame = pd.DataFrame({"review": text(n), "stars": rng.choice(["bad", "good", "great"], n)})
        files[f"stars_{split}"] = folder / f"stars_{split}.csv"
        frame.to_csv(files[f"stars_{split}"], index=False)
    frame = pd.DataFrame({"a": text(rows), "b": text(rows), "score": rng.uniform(0, 5, rows).round(3)})
    files["score"] = folder / "score.jsonl"
    frame.to_json(files["score"], orient="records", lines=True)
    return files


def task_yaml(config_dir: Path, files: dict[str, Path], body: str = "") -> None:
    (config_dir / "task").mkdir(parents=True, exist_ok=True)
    (config_dir / "task" / "reviews.yaml").write_text(
        f"""# @package _global_
defaults:
  - /task/text@task
  - override /model: minilm
task:
  target: stars
  auxiliaries: [score]
  tasks:
    stars: {{data_files: {{train: {files["stars_train"]}, test: {files["stars_test"]}}}, text: [review], label: stars}}
    score: {{data_files: {{train: {files["score"]}}}, text: [a, b], label: score, test_fraction: 0.25}}
{body}"""
    )


def run_user_task(tiny_glue, tmp_path: Path, out: Path, *extra: str) -> dict:
    """``python -m src.run --config-dir <tmp>/conf task=reviews`` from ``tmp_path`` (any folder); its results."""
    overrides = [o for o in GLUE_TINY if not o.startswith(("model=", "task.max_"))]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.run",
            "--config-dir",
            str(tmp_path / "conf"),
            "task=reviews",
            *overrides,
            *extra,
            f"model.pretrained={tiny_glue}/models/tiny-bert",
            f"paths.cache_dir={tmp_path}/cache",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_a_user_task_yaml_trains_through_the_cli_with_config_dir(tiny_glue, tmp_path):
    files = write_tasks(tmp_path / "data")
    task_yaml(tmp_path / "conf", files)
    results = run_user_task(tiny_glue, tmp_path, tmp_path / "run")
    assert results["target"] == "stars" and results["tasks"] == ["stars", "score"]
    assert results["target_metric"] == "accuracy"
    correct = results["target_test"] * 20  # accuracy on the 20 rows of stars_test.csv: a whole number of them
    assert abs(correct - round(correct)) < 1e-4
    assert results["label_names"] == {"stars": ["bad", "good", "great"]}  # sorted, recorded
    assert set(results["test"]) == {"stars", "score"} and "pearson" in results["test"]["score"]


@pytest.fixture
def text_cfg(tiny_glue, tmp_path):
    files = write_tasks(tmp_path / "data")
    entries = {
        "stars": {
            "data_files": {"train": str(files["stars_train"]), "test": str(files["stars_test"])},
            "text": ["review"],
            "label": "stars",
        },
        "score": {
            "data_files": {"train": str(files["score"])},
            "text": ["a", "b"],
            "label": "score",
            "test_fraction": 0.25,
        },
    }

    def make(*overrides: str, tasks: dict | None = None, task: str = "text"):
        cfg_overrides = [
            *[o for o in GLUE_TINY if not o.startswith("task.max_")],
            f"task={task}",
            f"paths.data_dir={tiny_glue}",
            f"paths.cache_dir={tmp_path}/cache",
            f"model.pretrained={tiny_glue}/models/tiny-bert",
            "+task.tasks=" + json.dumps(tasks if tasks is not None else entries).replace('"', ""),
        ]
        return compose_config([*cfg_overrides, *overrides], output_dir=tmp_path / "run")

    make.files = files
    make.entries = entries
    return make


def test_kinds_heads_and_label_order_are_inferred(text_cfg):
    from src.train import build

    dm, module, _ = build(text_cfg("task.target=stars"))
    specs = {t.name: t for t in dm.tasks}
    assert specs["stars"].num_outputs == 3 and specs["stars"].metrics == ("accuracy",)
    assert specs["score"].regression and specs["score"].metrics == ("pearson", "spearman")
    assert dm.label_names == {"stars": ["bad", "good", "great"]}
    dm.setup()
    assert len(dm.test_sets["score"]) == 12 and len(dm.train_sets["score"]) == 36  # a quarter of 48 carved
    assert len(dm.dev_set) == 5 and len(dm.train_sets["stars"]) == 43  # the target's dev: 10% of its train


@pytest.mark.slow
def test_glue_plus_a_task_of_your_own_trains(text_cfg):
    entries = {"stars": text_cfg.entries["stars"]}
    results = train(text_cfg("task.auxiliaries=[stars]", "method=uniform", tasks=entries, task="glue_rte"))
    assert results["tasks"] == ["rte", "stars"] and results["label_names"] == {"stars": ["bad", "good", "great"]}
    assert set(results["test"]) == {"rte", "stars"}


@pytest.mark.parametrize(
    "change,phrase",
    [
        (lambda e: e["stars"].update(label="verdict"), "lacks the column(s) ['verdict'] named by its label field"),
        (lambda e: e["stars"].update(text=["body"]), "lacks the column(s) ['body'] named by its text field"),
        (
            lambda e: e["stars"]["data_files"].update(train="/nope/stars.csv"),
            "data_files.train: /nope/stars.csv does not exist",
        ),
        (lambda e: e["stars"].update(num_labels=2), "num_labels=2, but the train split has 3 labels"),
        (lambda e: e["score"].update(kind="classification", num_labels=2), "is not a class in 0..1"),
        (lambda e: e["stars"].update(metrics=["bleu"]), "metrics: ['bleu'] not known"),
        (lambda e: e["stars"].update(colour="red"), "task.tasks.stars: unknown field(s) colour"),
        (lambda e: e["score"].pop("test_fraction"), "data_files has no 'test' split"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_task_and_field(text_cfg, change, phrase):
    from src.train import build

    entries = json.loads(json.dumps(text_cfg.entries))
    change(entries)
    with pytest.raises(Exception) as refused:  # noqa: B017 (Hydra wraps what the DataModule raises)
        build(text_cfg("task.target=stars", tasks=entries))[0].setup()
    cause = refused.value.__cause__ or refused.value
    assert isinstance(cause, DataError | ConfigError) and phrase in str(cause), str(refused.value)


def test_a_text_group_without_tasks_or_with_an_unknown_target_is_refused(text_cfg):
    with pytest.raises(ConfigError, match="tasks is empty"):
        validate(text_cfg("task.target=stars", tasks={}))
    with pytest.raises(ConfigError, match="task.target='nope' is not in task group 'text'"):
        validate(text_cfg("task.target=nope"))


def test_numeric_strings_and_cases_that_cannot_be_inferred():
    from src.data.labels import infer_spec
    from src.data.text import TextTask

    task = TextTask.parse("t", {"data_files": {}, "path": "x", "text": ["a"], "label": "y"})
    spec, names = infer_spec(task, ["0", "1", "1"])  # numbers written as text: classes named by their text
    assert spec.num_outputs == 2 and names == ("0", "1")
    with pytest.raises(DataError, match="look numeric, but row 2 holds 'n/a'"):
        infer_spec(task, ["0.5", "1.5", "n/a", "2.5"])
    with pytest.raises(DataError, match="metrics: none not known"):
        TextTask.parse("t", {"path": "x", "text": ["a"], "metrics": []})


@pytest.mark.slow
def test_your_own_tasks_train_on_two_processes(tiny_glue, tmp_path):
    """The text group under DDP (two gloo processes): each takes its share of every planned step."""
    files = write_tasks(tmp_path / "data")
    task_yaml(tmp_path / "conf", files)
    runs = {}
    for devices in (1, 2):
        ddp = ["trainer.strategy=ddp"] if devices == 2 else []
        extra = ["trainer.max_epochs=1", f"trainer.devices={devices}", *ddp]
        runs[devices] = run_user_task(tiny_glue, tmp_path, tmp_path / f"run{devices}", *extra)
    # the same plan: every example of each task seen once whatever the number of processes
    assert runs[2]["examples_seen"] == runs[1]["examples_seen"]
    assert runs[2]["optimizer_steps"] == runs[1]["optimizer_steps"]
    assert runs[2]["label_names"] == {"stars": ["bad", "good", "great"]}


@pytest.mark.parametrize(
    "labels,num,names,encoded",
    [
        ([1, 2, 3, 5, 4, 1], 5, ("1", "2", "3", "4", "5"), [0, 1, 2, 4, 3, 0]),  # 1-based ratings: no phantom class 0
        ([1.0, 2.0, 3.0], 3, ("1", "2", "3"), [0, 1, 2]),  # read as floats, the same classes
        ([True, False, True], 2, ("False", "True"), [1, 0, 1]),  # booleans: two classes, not "fewer than two"
        ([0, 2, 1], 3, None, [0, 2, 1]),  # 0-based: the integers are the class ids
    ],
)
def test_classes_come_from_the_labels_seen(labels, num, names, encoded):
    from src.data.labels import encode_labels, infer_spec
    from src.data.text import TextTask

    task = TextTask(name="stars", text=("review",), label="stars")
    spec, got = infer_spec(task, labels)
    assert spec.num_outputs == num and got == names
    assert encode_labels(task, spec, got, labels, "stars") == encoded


@pytest.mark.slow  # two runs on the tiny BERT
def test_a_resume_after_an_own_tasks_file_was_edited_is_refused(text_cfg):
    """The run records its data's identity; an edited CSV between a stop and a resume is named, not mixed in."""
    import pandas as pd

    from src.data.base import DataError
    from src.train import train

    laid = "model.lr_schedule.epochs=2"  # the schedule over two epochs: the first run is the second's prefix
    first = train(text_cfg("task.target=stars", "trainer.max_epochs=1", laid, "ckpt_path=auto", "test=false"))
    assert "stars/train" in first["data"]
    path = text_cfg.files["stars_train"]
    frame = pd.read_csv(path)
    frame.loc[0, "review"] = "an edited review"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"the data changed since the checkpoint was written \(stars/train"):
        train(text_cfg("task.target=stars", "trainer.max_epochs=2", laid, "ckpt_path=auto"))


def test_one_file_for_train_and_test_or_a_column_named_twice_is_refused(text_cfg, tmp_path):
    from src.data.base import DataError
    from src.train import build

    def refused(tasks: dict) -> str:
        with pytest.raises(Exception) as e:  # noqa: B017 (Hydra wraps what the DataModule raises)
            build(text_cfg("task.target=stars", "task.auxiliaries=[]", tasks=tasks))
        cause = e.value.__cause__ or e.value
        assert isinstance(cause, DataError)
        return str(cause)

    entry = text_cfg.entries["stars"]
    train_file = str(text_cfg.files["stars_train"])
    same = {"stars": {**entry, "data_files": {"train": train_file, "test": train_file}}}
    assert "is both the train and the test split" in refused(same)
    twice = tmp_path / "twice.csv"
    twice.write_text("review,stars,stars\ngood film,good,bad\n")
    doubled = {"stars": {**entry, "data_files": {"train": str(twice), "test": str(text_cfg.files["stars_test"])}}}
    assert "names the column(s) ['stars'] twice" in refused(doubled)


@pytest.mark.slow  # a search on the tiny BERT
def test_a_missing_file_every_trial_shares_stops_the_search_and_the_same_command_then_trains(text_cfg, tmp_path):
    """A data error is the search's, not a trial's: Hydra wraps it (InstantiationException), the search unwraps it,
    stops naming the file, records no trial as failed; once the file exists, the same command trains every trial."""
    import shutil

    from src.data.base import DataError
    from src.search.command import run_search

    later = tmp_path / "data" / "later.jsonl"
    entries = {**text_cfg.entries, "score": {**text_cfg.entries["score"], "data_files": {"train": str(later)}}}
    command = (
        "task.target=stars",
        "task.auxiliaries=[score]",
        "search=grid",
        "search.space.weights=[1]",
        f"search.dir={tmp_path}/s",
    )
    with pytest.raises(DataError, match="later.jsonl"):
        run_search(text_cfg(*command, tasks=entries))
    assert not list((tmp_path / "s").glob("trials/*/failed.json"))
    shutil.copy(text_cfg.files["score"], later)
    result = run_search(text_cfg(*command, tasks=entries))
    assert [t["state"] for t in result["trials"]] == ["complete"] and result["total_runs"] == pytest.approx(1.0)


def test_the_error_classifier_finds_a_data_error_inside_hydras_wrapper():
    from hydra.errors import InstantiationException

    from src.data.base import DataError
    from src.search.live import shared_error

    try:
        try:
            raise DataError("score: /x/later.jsonl does not exist")
        except DataError as inner:
            raise InstantiationException("Error in call to target 'src.data.text.TextDataModule'") from inner
    except InstantiationException as wrapped:
        assert isinstance(shared_error(wrapped), DataError)
    assert shared_error(RuntimeError("CUDA error")) is None


@pytest.mark.slow  # four runs on the tiny BERT
def test_a_task_can_train_through_another_tasks_head(text_cfg):
    """``head: score``: the auxiliary has no head of its own; its loss reaches the target's head (the same
    parameters), a gradient method sums both tasks' gradients there, and a head of another kind is refused."""
    from src.train import build

    entries = {**text_cfg.entries, "copy": {**text_cfg.entries["score"], "head": "score"}}
    for method in ("uniform", "pcgrad"):
        cfg = text_cfg("task.target=score", "task.auxiliaries=[copy]", f"method={method}", tasks=entries)
        _, module, _ = build(cfg)
        assert set(module.model.heads) == {"score"}
        assert module.task_parameters("copy").keys() == module.task_parameters("score").keys()
        results = train(cfg)
        assert results["target_test"] is not None and set(results["weights"]) == {"score", "copy"}
    wrong = {**text_cfg.entries, "copy": {**text_cfg.entries["score"], "head": "stars"}}
    with pytest.raises(ConfigError, match=r"task.tasks.copy.head='stars': stars has 3 outputs, copy 1"):
        train(text_cfg("task.target=score", "task.auxiliaries=[copy, stars]", tasks=wrong))
    absent = {**text_cfg.entries, "copy": {**text_cfg.entries["score"], "head": "stars"}}
    with pytest.raises(ConfigError, match=r"head='stars': stars is not a task of this run"):
        train(text_cfg("task.target=score", "task.auxiliaries=[copy]", tasks=absent))
