"""Experiment configs, sweeps (a failing job does not stop the others), Optuna, and the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.report import report
from src.config import validate
from src.train import train
from tests.conftest import GLUE_TINY, ROOT, compose_config

EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments" / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}"], output_dir=tmp_path)
    validate(cfg)
    assert cfg.hydra.sweeper.params or cfg.search is not None  # every experiment is a sweep or a search
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = cfg.hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    first = [  # a glob (every method) keeps the experiment's default choice
        f"{o.key_or_group}={o._get_value_element_as_str(o.value().list[0] if o.is_sweep_override() else o.value())}"
        for o in parsed
        if not o.is_sweep_override() or hasattr(o.value(), "list")
    ]
    job = compose_config([f"experiment={experiment}", *first], output_dir=tmp_path)  # the sweep's first job
    validate(job)


@pytest.mark.parametrize(
    "experiment,job,tasks,weights",
    [
        ("multimnist_compare", ["method=alphavil"], ["left", "right"], None),
        ("multimnist_noise", ["method=alphavil"], ["left", "right", "noise"], None),
        ("known_effect", ["task=multimnist_low_mixed", "method=alphavil"], ["left", "left_coarse", "right"], None),
        ("oracle", ["method=static", "method.aux_weight=0.3"], ["left", "left_coarse"], [1.0, 0.3]),
        (
            "oracle_mixed",
            ["task=multimnist_low_mixed", "method=static", "method.weights={left_coarse:3,right:0}"],
            ["left", "left_coarse", "right"],
            [1.0, 3.0, 0.0],
        ),
    ],
)
def test_multimnist_experiments_run_one_job(experiment, job, tasks, weights, tiny_data, tmp_path):
    """One job of each experiment trains the experiment's tasks, with its batch size (64) and its weights."""
    cfg = compose_config(
        [
            f"experiment={experiment}",
            *job,
            f"paths.data_dir={tiny_data}",
            f"paths.cache_dir={tmp_path}/cache",
            "task.verify_checksums=false",
            "task.max_train_examples=64",
            "task.max_eval_examples=32",
            "trainer.max_epochs=1",
            "logger=none",
        ],
        output_dir=tmp_path / "run",
    )
    results = train(cfg)
    assert results["tasks"] == tasks and len(results["weight_history"]) == 1
    if weights is not None:
        assert list(results["weights"].values()) == pytest.approx(weights)
    if experiment in ("known_effect", "oracle", "oracle_mixed"):  # batch 64: the 64 target examples in one step
        assert cfg.task.batch_size == 64  # the experiment's, not an override


def test_glue_experiment_runs_one_job(tiny_glue, tmp_path):
    cfg = compose_config(
        [
            "experiment=glue_compare",
            "method=diw",
            "task=glue_mrpc",
            f"paths.data_dir={tiny_glue}",
            f"paths.cache_dir={tmp_path}/cache",
            f"model.pretrained={tiny_glue}/models/tiny-bert",
            "task.auxiliaries=[rte]",
            "task.max_train_examples=16",
            "model.max_length=32",
            "trainer.max_epochs=1",
            "logger=none",
        ],
        output_dir=tmp_path / "run",
    )
    results = train(cfg)
    assert results["target"] == "mrpc" and results["target_metric"] == "avg(f1,accuracy)"


@pytest.mark.parametrize("launcher", ["local_parallel", "slurm"])
def test_launcher_configs_compose_and_instantiate(launcher, tmp_path):
    from hydra.utils import instantiate

    overrides = ["experiment=multimnist_compare", f"hydra/launcher={launcher}"]
    if launcher == "slurm":
        overrides.append("hydra.launcher.partition=p")
    cfg = compose_config(overrides, output_dir=tmp_path)  # the plugins' schemas reject unknown keys here
    expected = {"local_parallel": "JoblibLauncher", "slurm": "SlurmLauncher"}[launcher]
    assert type(instantiate(cfg.hydra.launcher)).__name__ == expected
    if launcher == "slurm":
        assert cfg.hydra.launcher.submitit_folder.startswith(cfg.hydra.sweep.dir)


def _sweep(args: list[str], tiny_data: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALPHAVIL_CACHE_DIR": str(tmp_path / "cache")}
    common = [
        f"paths.data_dir={tiny_data}",
        "task.verify_checksums=false",
        "task.download=false",
        "task.max_train_examples=64",
        "task.max_eval_examples=32",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    return subprocess.run(
        [sys.executable, "-m", "src.run", "-m", *args, *common],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_others(tiny_data, tmp_path):
    proc = _sweep(["hydra/launcher=local_parallel", "task.batch_size=-1,16"], tiny_data, tmp_path)
    assert proc.returncode != 0  # the sweep reports the failure...
    assert "task.batch_size=-1: must be a positive, finite number" in proc.stderr
    done = list((tmp_path / "sweep").rglob("results.json"))
    assert len(done) == 1 and json.loads(done[0].read_text())["seed"] == 0  # ...and the good job ran


def test_optuna_over_alphavils_options_runs_on_the_search_command(tiny_cfg, tmp_path):
    """experiment=alphavil_optuna: TPE over αVIL's own options (no weights searched), each trial an αVIL run."""
    from src.search.command import run_search

    cfg = tiny_cfg("experiment=alphavil_optuna", "search.max_trials=2", f"search.dir={tmp_path}/optuna",
                   "trainer.max_epochs=2", "logger=none")  # fmt: skip
    result = run_search(cfg)
    assert result["strategy"] == "tpe" and len(result["trials"]) == 2
    for trial in result["trials"]:
        assert set(trial["point"]) == {"method.alpha_lr", "method.alpha_steps", "method.w_min"}
        record = json.loads((tmp_path / "optuna" / "trials" / trial["key"] / "results.json").read_text())
        assert (
            record["method"] == "AlphaVIL"
            and f"method.alpha_steps={trial['point']['method.alpha_steps']}" in (record["overrides"])
        )


def test_report_tables_plots_and_missing_runs(tiny_cfg, tmp_path):
    sweep = tmp_path / "sweep"
    for method in ("single_task", "alphavil"):
        for seed in (0, 1):
            train(tiny_cfg(f"method={method}", f"seed={seed}"))
            shutil.copytree(tmp_path / "run", sweep / f"multimnist_left/{method}/seed{seed}")
            shutil.rmtree(tmp_path / "run")
    flagged = sweep / "multimnist_left/alphavil/seed1/results.json"
    flagged.write_text(json.dumps({**json.loads(flagged.read_text()), "warnings": ["epoch 1: dev loss rose"]}))
    (sweep / "multimnist_left/uniform/seed0/.hydra").mkdir(parents=True)  # a run that died
    (sweep / "multimnist_left/uniform/seed1").mkdir(parents=True)
    (sweep / "multimnist_left/uniform/seed1/results.json").write_text("{not json")
    text = report(sweep).read_text()
    # single-task spends no auxiliary examples: marked against the reference row (here the only other one)
    assert "| single_task † **(oracle)** |" in text and "| alphavil |" in text
    assert (
        "† spends more than 5% more or less than the reference row `alphavil`: single_task: examples and steps" in text
    )
    assert "Oracle: `single_task`" in text
    assert "multimnist_left/uniform/seed0`: no results.json" in text
    assert "multimnist_left/uniform/seed1`: corrupt results.json" in text
    assert "## Runs flagged while training" in text and "alphavil/seed1`: epoch 1: dev loss rose" in text
    single = next(line for line in text.splitlines() if line.startswith("| single_task"))
    assert len(single.split(" | ")[2].split(", ")) == 2  # one test score per seed
    assert "seeds: 0, 1" in text and "Epochs: 2" in text
    png = sweep / "report" / "weights_multimnist_left.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"


def fake_result(choice: str, seed: int, test: float, dev: float, **fields) -> dict:
    """A results.json as the report reads it: target left, one auxiliary right, setting ``setting``."""
    return {
        "target": "left",
        "task_config": "setting",
        "target_metric": "accuracy",
        "method": choice,
        "method_choice": choice,
        "overrides": [],
        "seed": seed,
        "target_test": test,
        "target_dev": dev,
        "tasks": ["left", "right"],
        **fields,
    }


def test_report_oracle_and_paired_differences_on_hand_computed_values():
    from experiments.report import tables

    def runs(choice, tests, dev, overrides=(), memory=(2000.0, 2100.0, 2300.0)):
        seen = {"left": 1000, "right": 3000}
        weights = {"left": 1.0, "right": 0.5}
        return [
            fake_result(
                choice,
                seed,
                t,
                dev,
                overrides=list(overrides),
                weights=weights,
                examples_seen=seen,
                peak_memory_mb=m,
                peak_memory_scope="training",
            )
            for seed, (t, m) in enumerate(zip(tests, memory))
        ]

    text = tables(
        runs("single_task", [0.80, 0.82, 0.81], 0.80)
        + runs("static", [0.83, 0.84, 0.83], 0.85, ["method.weights.right=0.5"])  # best dev: the oracle
        + runs("uniform", [0.79, 0.80, 0.78], 0.90 - 0.2)
        + runs("alphavil", [0.82, 0.83, 0.85], 0.99)  # best dev of all, but not a fixed weighting
    )
    assert "Oracle: `static (weights.right=0.5)`" in text
    row = next(line for line in text.splitlines() if line.startswith("| alphavil |"))
    # vs single: differences .02, .01, .04: mean .0233, sd .01528, t(2) = 4.303 → ± 4.303 · .01528 / √3 = .0379
    # vs oracle: differences −.01, −.01, .02: mean 0, sd .01732 → ± .0430
    assert "| 0.8200, 0.8300, 0.8500 | +2.33 ± 3.79 | +0.00 ± 4.30 |" in row
    assert "left=1,000, right=3,000" in row
    assert "| 2,133 | left=1.00, right=0.50 |" in row  # peak memory: the mean over seeds, 6,400 / 3
    unscoped = tables([{**r, "peak_memory_scope": None} for r in runs("alphavil", [0.8, 0.8, 0.8], 0.9)])
    assert "| – | left=1.00, right=0.50 |" in unscoped  # a peak that may hold earlier jobs' is not shown
    assert next(line for line in text.splitlines() if "(oracle)" in line).startswith("| static (weights.right=0.5)")


def test_report_pairs_each_run_with_single_task_at_its_precision_when_a_table_mixes_them():
    """trainer=auto is bf16 on one CPU and float32 on another: a table that holds both says so, and a float32 run's
    Δ vs single_task is to float32 single-task where there is one (else to the single-task run at its seed)."""
    from experiments.report import tables

    def run(choice, seed, test, precision, overrides=()):
        return fake_result(
            choice, seed, test, 0.8, overrides=list(overrides), precision=precision, weights={"left": 1.0, "right": 1.0}
        )

    fp32 = ["trainer.precision=32-true"]
    text = tables(
        [run("single_task", s, t, "bf16-mixed") for s, t in enumerate([0.80, 0.81, 0.82])]
        + [run("single_task", s, t, "32-true", fp32) for s, t in enumerate([0.70, 0.71])]  # seeds 0, 1 only
        + [run("alphavil", s, t, "bf16-mixed") for s, t in enumerate([0.81, 0.82, 0.83])]
        + [run("forkmerge", s, t, "32-true") for s, t in enumerate([0.72, 0.73, 0.84])]  # auto, resolved to float32
    )
    row = {line.split(" | ")[0][2:].split(" **")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert "| +1.00 ± 0.00 |" in row["alphavil [bf16-mixed]"]  # against bf16 single-task
    # against float32 single-task on seeds 0 and 1 (+2, +2), bf16 on seed 2 (+2): +2.00
    assert "| +2.00 ± 0.00 |" in row["forkmerge [32-true]"]
    assert "| -10.00 ± 0.00 |" in row["single_task · 32-true"]  # float32 against bf16, as before
    assert row["single_task [bf16-mixed]"].split(" | ")[3] == "–"
    assert "Precision: this table holds runs at more than one (32-true: 5 runs, bf16-mixed: 6 runs)" in text

    one = tables([run("single_task", 0, 0.8, "32-true"), run("alphavil", 0, 0.9, "32-true")])
    assert "Precision:" not in one and "[32-true]" not in one  # one precision: nothing to say


def test_report_gives_method_variants_rows_of_their_own():
    from experiments.report import method_key, method_order

    plain = {"method_choice": "alphavil", "method": "AlphaVIL", "overrides": ["seed=0", "method=alphavil"]}
    tuned = {**plain, "overrides": ["method=alphavil", "method.rho=0.9", "method.alpha_lr=0.2"]}
    assert method_key(plain) == "alphavil"
    assert method_key(tuned) == "alphavil (alpha_lr=0.2, rho=0.9)"
    sampled = {**plain, "method_choice": "uniform", "overrides": ["method=uniform"], "schedule": "sampled"}
    assert method_key(sampled) == "uniform · sampled"
    grid = {"method_choice": "static", "overrides": ["method.aux_weight=1"], "weights": {"left": 1.0, "right": 1.0}}
    assert method_key({**grid, "schedule": "mixed"}) == "uniform · mixed"  # the oracle grid's weight 1
    assert method_key({**grid, "weights": {"left": 1.0, "right": 0.3}}) == "static (aux_weight=1)"
    assert method_key({**plain, "schedule": "blocks"}) == "alphavil"  # a schedule of its own: no suffix
    control = {
        "method_choice": "conditional",
        "overrides": ["model.net.condition.enabled=false"],
        "schedule": "sampled",
    }
    assert method_key(control) == "conditional (condition.enabled=false) · sampled"  # apart from the method's row
    matched = {**plain, "method_choice": "pcgrad", "overrides": ["method=pcgrad"], "schedule": "matched"}
    assert method_key(matched) == "pcgrad · matched"
    fp32 = {**plain, "overrides": ["method=alphavil", "trainer.precision=32-true"], "precision": "32-true"}
    assert method_key(fp32) == "alphavil · 32-true" and method_key({**plain, "precision": "bf16-mixed"}) == "alphavil"
    keys = ["alphavil (alpha_lr=0.2, rho=0.9)", "alphavil", "custom", "uniform", "single_task"]
    assert sorted(keys, key=method_order) == [
        "single_task",
        "uniform",
        "alphavil",
        "alphavil (alpha_lr=0.2, rho=0.9)",
        "custom",
    ]


def test_bench_table_gives_medians_ranges_and_ratios_to_uniform():
    from experiments.bench import table

    def runs(*seconds):
        return [{"examples": 100, "s_per_1k": s, "peak_mb": 500.0 + s} for s in seconds]

    lines = table({"uniform": runs(2.0, 1.0, 3.0), "alphavil": runs(5.0, 4.0, 9.0)})
    assert lines[2] == "| uniform | 100 | 2.000 (1.000–3.000) | 1.00 | 503 |"
    assert lines[3] == "| alphavil | 100 | 5.000 (4.000–9.000) | 2.50 | 509 |"  # median 5 / median 2


@pytest.mark.slow
def test_bench_times_every_method_against_uniform(tiny_data, tmp_path):
    from experiments.bench import METHODS, run_group

    overrides = [
        "task=multimnist_left",
        f"paths.data_dir={tiny_data}",
        f"paths.cache_dir={tmp_path}/cache",
        "task.verify_checksums=false",
        "task.download=false",
        "task.max_train_examples=64",
        "task.max_eval_examples=32",
    ]
    lines = run_group("tiny", overrides, tmp_path / "bench", repeats=2)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines if line.startswith("| ")}
    assert set(METHODS) == set(rows) - {"method"} and "pcgrad" in METHODS
    for m in METHODS:
        assert int(rows[m][1]) > 0 and float(rows[m][4].rstrip(" |")) > 100  # examples; peak RSS in MB
    assert any(line.startswith("Lightning loop / plain PyTorch loop") for line in lines)


def test_report_tables_one_budget_each_with_the_oracle_at_it_and_spending_marked():
    from experiments.report import tables

    def runs(choice, schedule, rule, test, dev, steps, aux, weights=None):
        budget = {"rule": rule, "per_epoch": {"left": 100, "right": aux // 20}, "batching": "mixed"}
        if rule == "fraction":
            budget["fraction"] = 0.5
        return [
            fake_result(
                choice,
                seed,
                test + seed / 100,
                dev,
                weights=weights or {"left": 1.0, "right": 1.0},
                examples_seen={"left": 2000, "right": aux},
                schedule=schedule,
                budget=budget,
                dev_examples=200,
                optimizer_steps=steps,
                passes={"forward": steps, "backward": steps},
                dev_examples_used=0,
            )
            for seed in range(3)
        ]

    text = tables(
        runs("single_task", "target", "equal", 0.80, 0.80, 320, 0, {"left": 1.0, "right": 0.0})
        + runs("uniform", "sampled", "equal", 0.85, 0.84, 640, 2000)
        + runs("uniform", "mixed", "equal", 0.83, 0.83, 320, 2000)
        + runs("alphavil", "blocks", "equal", 0.84, 0.90, 640, 2000)
        + runs("uniform", "sampled", "fraction", 0.90, 0.90, 10_000, 270_000)
        + runs("alphavil", "blocks", "fraction", 0.88, 0.95, 10_200, 272_000)
    )
    sections = {part.split(" (target", 1)[0]: part for part in text.split("### ")[1:]}
    equal = "setting: left + right, budget equal, dev 200"
    fraction = "setting: left + right, budget fraction 0.5, dev 200"
    assert set(sections) == {equal, fraction}
    small, large = sections[equal], sections[fraction]
    assert "Oracle: `uniform · sampled`" in small and "Oracle: `uniform · sampled`" in large
    assert "| single_task † |" in small and "| single_task † |" in large  # single-task joins both budgets
    assert "| uniform · mixed † |" in small and "uniform · mixed: steps." in small  # same examples, half the steps
    assert "| alphavil |" in small and "| alphavil |" in large  # within 5% of the reference in both
    # at each budget αVIL is measured against its own budget's oracle: −0.01 and −0.02 on every seed
    assert "| -1.00 ± 0.00 |" in small and "| -2.00 ± 0.00 |" in large


@pytest.mark.slow
def test_bench_at_matched_budget_gives_alphavil_and_sampled_weights_the_same_examples_and_steps(tiny_data, tmp_path):
    from experiments.bench import METHODS, budget_group

    extra = [f"paths.data_dir={tiny_data}", f"paths.cache_dir={tmp_path}/cache", "task.verify_checksums=false"]
    extra += ["task.download=false", "task.train_examples={left: 96}", "task.batch_size=32"]
    lines = budget_group(["task.budget=equal"], tmp_path / "bench", repeats=1, extra=extra)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines if line.startswith("| ")}
    assert set(rows) - {"method"} == {"uniform · sampled", "uniform · mixed"} | set(METHODS) - {"uniform"}
    assert rows["alphavil"][1:3] == rows["uniform · sampled"][1:3] == ["192", "6"]  # 96 + 96 examples, 3 + 3 steps
    assert rows["uniform · mixed"][1:3] == ["192", "3"]


def test_multimnist_compare_sweeps_every_method_it_finds():
    """The sweep's method list is discovered (a glob over conf/method), so a new method joins it."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tests.conftest import config_options

    params = yaml.safe_load((ROOT / "experiments/conf/experiment/multimnist_compare.yaml").read_text())
    sweep = params["hydra"]["sweeper"]["params"]["method"]
    glob = OverridesParser.create().parse_overrides([f"method={sweep}"])[0].value()
    registered = config_options("method") + [f"base_{m}" for m in config_options("method")]  # the ConfigStore's too
    assert sorted(glob.filter(registered)) == sorted(set(config_options("method")) - {"static"})


@pytest.mark.slow
def test_glue_speed_bench_times_float32_bf16_and_length_grouping(tiny_glue, tmp_path):
    from experiments.bench import GLUE_PATHS, glue_speed

    overrides = [
        "task=glue_rte",
        "model=minilm",
        "task.auxiliaries=[mrpc]",
        f"paths.data_dir={tiny_glue}",
        f"paths.cache_dir={tmp_path}/cache",
        f"model.pretrained={tiny_glue}/models/tiny-bert",
        "task.max_train_examples=24",
        "task.max_eval_examples=16",
        "task.batch_size=8",
        "model.max_length=32",
    ]
    lines = glue_speed(overrides, tmp_path / "bench", repeats=1)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines if line.startswith("| ")}
    assert set(rows) - {"path"} == set(GLUE_PATHS)
    assert len({rows[p][1] for p in GLUE_PATHS}) == 1 and int(rows["float32"][1]) == 48  # one plan: 24 rte + 24 mrpc
    assert rows["float32"][3] == "1.00" and float(rows["bf16"][2].split()[0]) > 0


@pytest.mark.slow
def test_stsb_known_files_and_one_job_of_its_experiment(tiny_glue, tmp_path):
    """The known-answer STS-B files: disjoint target and auxiliary rows, scores binarised, labels permuted."""
    import pandas as pd

    from experiments.stsb_known import main

    out = tmp_path / "cache" / "stsb_known"
    main(["--source", str(tiny_glue / "glue"), "--out", str(out), "--target", "30", "--threshold", "2.5"])
    read = {name: pd.read_csv(out / f"{name}.csv") for name in ("low", "low_test", "binary", "noise", "binary_test")}
    source = pd.read_parquet(tiny_glue / "glue" / "stsb" / "train-00000-of-00001.parquet")
    pair = ["sentence1", "sentence2"]
    assert len(read["low"]) == 30 and len(read["binary"]) == len(source) - 30
    assert not set(map(tuple, read["low"][pair].values)) & set(map(tuple, read["binary"][pair].values))
    scores = dict(zip(map(tuple, source[pair].values), source["label"], strict=True))
    assert all((scores[tuple(r[pair])] >= 2.5) == r["label"] for _, r in read["binary"].iterrows())
    assert (
        read["noise"][pair].equals(read["binary"][pair])
        and read["noise"]["label"].sum() == read["binary"]["label"].sum()
    )
    assert len(read["low_test"]) == len(read["binary_test"]) == 40  # STS-B validation

    cfg = compose_config(
        [*GLUE_TINY, "experiment=glue_stsb_known", "method=alphavil", f"paths.data_dir={tiny_glue}",
         f"paths.cache_dir={tmp_path}/cache", f"model.pretrained={tiny_glue}/models/tiny-bert", "trainer.max_epochs=1",
         "task.dev_fraction=0.2"],
        output_dir=tmp_path / "run",
    )  # fmt: skip
    results = train(cfg)
    assert results["tasks"] == ["low", "binary", "noise"] and results["target_metric"] == "avg(pearson,spearman)"
    assert results["examples_seen"]["binary"] == results["examples_seen"]["low"]  # the equal budget
    inverted = pd.read_csv(out / "inverted.csv")  # the candidate harmful control: the same pairs, 5 − score
    assert inverted[pair].equals(read["binary"][pair])
    assert all(abs(scores[tuple(r[pair])] - (5 - r["label"])) < 1e-6 for _, r in inverted.iterrows())
    harmful = compose_config(
        [*GLUE_TINY, "experiment=glue_stsb_harmful", "method=uniform", f"paths.data_dir={tiny_glue}",
         f"paths.cache_dir={tmp_path}/cache", f"model.pretrained={tiny_glue}/models/tiny-bert", "trainer.max_epochs=1",
         "task.dev_fraction=0.2"],
        output_dir=tmp_path / "harmful",
    )  # fmt: skip
    results = train(harmful)
    assert results["tasks"] == ["low", "binary", "inverted"] and results["test"]["inverted"]["score"] is not None


def _record(folder: Path, seed: int, test, aux: list[str], method: str = "Uniform", tag: str = "") -> None:
    folder.mkdir(parents=True)
    record = {
        "target": "left", "method": method, "method_choice": method.lower(), "task_config": "toy",
        "tasks": ["left", *aux], "train_examples": {"left": 100, **{a: 500 for a in aux}}, "target_metric": "accuracy",
        "target_dev": 0.5, "target_test": test, "seed": seed, "epochs": 1, "schedule": "mixed",
        "weights": {"left": 1.0, **{a: 1.0 for a in aux}}, "run_record": {"task.auxiliaries": aux, "tag": tag},
    }  # fmt: skip
    (folder / "results.json").write_text(json.dumps(record))


def test_the_report_counts_each_run_once_and_names_what_it_left_out(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        _record(sweep / f"uniform/seed{seed}", seed, 0.8 + seed / 100, ["right"])
    shutil.copytree(sweep / "uniform/seed0", sweep / "copy_of_seed0")  # a copy: the same configuration and seed
    _record(sweep / "uniform/seed2", 2, float("nan"), ["right"])  # a NaN score: named, out of every mean
    _record(sweep / "uniform/seed3", 3, "0.9", ["right"])  # a score written as a string
    _record(sweep / "other/seed0", 0, 0.7, ["noise"], tag="other")  # the same config, other auxiliaries
    text = report([sweep, sweep], tmp_path / "out").read_text()  # the folder given twice
    assert "copy_of_seed0`: a copy of" in text
    assert "uniform/seed2`: target_test is nan, not a finite number" in text
    assert "uniform/seed3`: target_test is '0.9', not a finite number" in text
    assert "### toy: left 100 + right 500" in text and "### toy: left 100 + noise 500" in text
    row = next(line for line in text.split("### toy: left 100 + right 500")[1].splitlines() if "| uniform" in line)
    assert "0.8050 ± 0.0071** | 0.8000, 0.8100 |" in row  # seeds 0 and 1, once each
    noise = next(line for line in text.split("### toy: left 100 + noise 500")[1].splitlines() if "| uniform" in line)
    assert "0.7000 ± n/a (one seed)" in noise


def test_k_scaling_line_fit_and_super_linear_excess():
    from experiments.bench import _line

    slope, intercept = _line([1, 2, 3, 5], [3.0, 5.0, 7.0, 11.0])
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(1.0)
    early_slope, early_intercept = _line([1, 2, 3], [3.0, 5.0, 7.0])
    assert 16.5 / (early_slope * 5 + early_intercept) - 1 == pytest.approx(0.5)  # 50% over the line: super-linear


@pytest.mark.slow
def test_k_scaling_bench_times_every_method_at_each_k(tiny_glue, tmp_path):
    from experiments.bench import K_METHODS, k_scaling

    overrides = [
        "task=glue_stsb",
        "model=minilm",
        f"paths.data_dir={tiny_glue}",
        f"paths.cache_dir={tmp_path}/cache",
        f"model.pretrained={tiny_glue}/models/tiny-bert",
        "task.max_train_examples=16",
        "task.max_eval_examples=8",
        "task.batch_size=8",
        "model.max_length=32",
    ]
    lines = k_scaling(overrides, tmp_path / "bench", ks=[1, 2], repeats=1)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines if line.startswith("| ")}
    assert set(rows) - {"method"} == set(K_METHODS)
    for name in K_METHODS:
        cells = rows[name][1:3]  # K=1 and K=2: "seconds, peak MB"
        assert all(float(c.split(",")[0]) >= 0 and float(c.split(",")[1]) > 0 for c in cells)  # tiny: 0.0 s rounds
    memory = next(line for line in lines if line.startswith("αVIL's peak memory"))
    assert "K=1:" in memory and "K=2:" in memory and "(K + 4) × shared" in memory
    assert "16 examples per epoch" in "\n".join(lines)


def test_the_matched_table_states_each_method_against_the_oracle_and_uniform_on_the_same_batching():
    from experiments.matched_table import table

    oracle = {0: 0.90, 1: 0.80}
    rows = {
        "pcgrad · matched": {"test": {0: 0.89, 1: 0.80}},
        "pcgrad · mixed": {"test": {0: 0.85, 1: 0.75}},
        "diw · matched": {"test": {0: 0.70}},
        "fixed, beside the grid: uniform · matched": {"test": {0: 0.88, 1: 0.78}},  # the frontier's row: once only
    }
    text = table(rows, oracle, {"matched": {0: 0.88, 1: 0.78}, "mixed": {0: 0.84, 1: 0.74}})
    lines = text.splitlines()
    assert lines[2] == "| pcgrad | 0, 1 | -0.50 ± 6.35 | +1.50 ± 6.35 | -5.00 ± 0.00 | 0, 1 |"  # best first
    assert lines[3].startswith("| uniform | 0, 1 | -2.00") and lines[3].endswith("| – | -6.00 ± 0.00 | 0, 1 |")
    assert lines[4] == "| diw | 0 | -20.00 | -18.00 | – | – |"
    assert len(lines) == 5
