"""Weight search (src/search/): strategies on hand-made histories, live searches on the tiny
MNIST, resume after a kill, several workers on one study, bad input, and the frontier report."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.config import ConfigError
from src.search.command import run_search
from src.search.replay import Replay
from src.search.strategies import Trial, grid, halving, hyperband, point_key, ranked, rungs
from tests.conftest import ROOT, TINY


def _search(tiny_cfg, tmp_path, *overrides: str):
    return tiny_cfg(f"search.dir={tmp_path}/search", *overrides)


def _points(n: int) -> list[dict]:
    return [{"weight/a": float(w), "batching": "sampled"} for w in range(1, n + 1)]


# --- strategies on hand-made dev histories --------------------------------------------------------
def test_halving_replayed_on_hand_made_histories_keeps_the_best_third_and_counts_every_epoch():
    """9 points, 18 epochs, eta 3: rungs at 2, 6 and 18 epochs; 9 → 3 → 1 points.

    Point i's dev score is i/10 after each epoch, except that point 2 starts worst and ends best: successive
    halving stops it at the first rung, so the survivor is the best point among the promoted ones (point 9).
    """
    points = _points(9)
    histories = {point_key(p): [i / 10] * 18 for i, p in enumerate(points, 1)}
    histories[point_key(points[1])] = [0.0] * 6 + [5.0] * 12
    trials = Replay(histories, 18)
    assert rungs(3, 3, 18) == [2, 6, 18]
    chosen = halving(points, trials, eta=3)
    assert chosen.key == point_key(points[8])
    assert trials.cost() == pytest.approx((9 * 2 + 3 * (6 - 2) + 1 * (18 - 6)) / 18)  # 42/18 runs
    assert {t.key: t.epochs for t in trials.trials.values()} == {
        point_key(p): e for p, e in zip(points, [2, 2, 2, 2, 2, 2, 6, 6, 18])
    }
    assert trials.trials[point_key(points[1])].state == "stopped"


def test_grid_trains_every_point_to_the_end_and_chooses_on_dev():
    points = _points(4)
    histories = {point_key(p): [0.1, s] for p, s in zip(points, (0.5, 0.9, 0.7, 0.9))}
    trials = Replay(histories, 2)
    assert grid(points, trials).key == point_key(points[1])  # a tie goes to the first in the pool
    assert trials.cost() == 4


def test_hyperband_continues_a_point_drawn_again_instead_of_retraining_it():
    points = _points(3)
    histories = {point_key(p): [i / 10] * 9 for i, p in enumerate(points, 1)}
    trials = Replay(histories, 9)
    chosen = hyperband(points, trials, eta=3, min_epochs=1)
    assert chosen.key == point_key(points[2])
    assert trials.cost() <= 3  # every point at most once to the full length, whatever the brackets drew
    assert all(t.epochs <= 9 for t in trials.trials.values())


def test_a_point_without_a_record_fails_and_costs_nothing():
    trials = Replay({"x": [0.5]}, 1)
    (t,) = trials.advance([{"weight/a": 7.0, "batching": "sampled"}], 1)
    assert t.state == "failed" and trials.cost() == 0


def test_best_trial_prefers_the_higher_best_dev_then_the_earlier():
    a, b, c = Trial("a", {}, [0.1, 0.5]), Trial("b", {}, [0.5, 0.2]), Trial("c", {}, [0.4])
    assert [t.key for t in ranked([c, b, a])] == ["b", "a", "c"]


# --- live searches on the tiny MNIST --------------------------------------------------------------
def test_a_halving_search_runs_end_to_end_and_writes_its_record(tiny_cfg, tmp_path):
    result = run_search(_search(tiny_cfg, tmp_path, "search=halving", "logger=csv"))
    saved = json.loads((tmp_path / "search" / "search.json").read_text())
    assert saved["strategy"] == "halving" and saved["chosen"] == result["chosen"]
    # 4 points ({0, 0.3, 1, 3} on sampled batches), 2 epochs: all to 1 epoch, the best 2 on to 2
    assert saved["total_runs"] == pytest.approx(4 * 0.5 + 2 * 0.5)
    states = sorted(t["state"] for t in saved["trials"])
    assert states == ["complete", "complete", "stopped", "stopped"]
    complete = [t for t in saved["trials"] if t["state"] == "complete"]
    best = max(complete, key=lambda t: t["dev"])
    assert saved["chosen"]["key"] == best["key"] and saved["chosen"]["dev"] == pytest.approx(best["dev"])
    assert saved["chosen"]["test"] is not None and all(t["test"] is None for t in saved["trials"] if t["epochs"] < 2)
    assert saved["total_optimizer_steps"] == sum(t["optimizer_steps"] for t in saved["trials"])
    # a promoted trial's log covers both of its segments (Lightning's writer would start the file again)
    with open(tmp_path / "search" / "trials" / best["key"] / "csv" / "metrics.csv") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("dev/score")}
    assert epochs == {"0", "1"}
    # the trial is the run src.run would make: static weights, only the kept auxiliaries
    single = next(t for t in saved["trials"] if t["key"] == "single")  # every auxiliary at 0: single-task
    assert single["weights"] == {"left": 1.0, "right": 0.0} and single["batching"] == "target"
    record = json.loads((tmp_path / "search" / "trials" / "right-0.3_sampled" / "results.json").read_text())
    assert record["method_choice"] == "static" and "method.weights={right:0.3}" in record["overrides"]


def test_a_stopped_search_continues_and_counts_nothing_twice(tiny_cfg, tmp_path, monkeypatch):
    import src.search.live as live

    whole = run_search(tiny_cfg(f"search.dir={tmp_path}/whole", "search=halving"))
    real, calls = live.train, []

    def stopped_on_the_fourth(cfg, *args, **kwargs):
        calls.append(cfg.paths.output_dir)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill would, mid-search
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(live, "train", stopped_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_search(_search(tiny_cfg, tmp_path, "search=halving"))
    trials = tmp_path / "search" / "trials"
    before = {p.parent.name: p.stat().st_mtime_ns for p in trials.glob("*/results.json")}
    assert len(before) == 3
    monkeypatch.setattr(live, "train", real)
    again = run_search(_search(tiny_cfg, tmp_path, "search=halving"))
    assert again["total_runs"] == whole["total_runs"]
    assert again["chosen"]["key"] == whole["chosen"]["key"]
    # a trial that finished its rung before the stop was not trained again for it
    for key, mtime in before.items():
        saved = json.loads((trials / key / "results.json").read_text())
        if saved["epochs"] == 1 and key not in {t["key"] for t in again["trials"] if t["state"] == "complete"}:
            assert (trials / key / "results.json").stat().st_mtime_ns == mtime
    assert [json.loads((p).read_text()) for p in trials.glob("*/segments.json")]


def test_a_crashing_trial_is_recorded_as_failed_and_the_search_goes_on(tiny_cfg, tmp_path, monkeypatch):
    import src.search.live as live

    real = live.train

    def crash_one(cfg, *args, **kwargs):
        if "right-3_sampled" in str(cfg.paths.output_dir):
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(live, "train", crash_one)
    result = run_search(_search(tiny_cfg, tmp_path, "search=grid"))
    failed = [t for t in result["trials"] if t["state"] == "failed"]
    assert [t["key"] for t in failed] == ["right-3_sampled"] and "illegal memory access" in failed[0]["error"]
    assert result["chosen"] is not None and result["total_runs"] == pytest.approx(3.0)


def test_tpe_with_a_pruner_stops_proposing_once_its_budget_is_spent(tiny_cfg, tmp_path):
    result = run_search(_search(tiny_cfg, tmp_path, "search=tpe", "search.max_runs=2", "search.eta=2"))
    assert result["strategy"] == "tpe"
    assert 2 <= result["total_runs"] <= 3  # the last proposal may finish the trial it started
    import optuna

    study = optuna.load_study(
        study_name="search",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "search" / "study.journal"))
        ),
    )
    assert study.trials and all(t.user_attrs.get("key") for t in study.trials)


@pytest.mark.slow  # five trials and a source run
def test_regmix_and_a_hybrid_run_end_to_end(tiny_cfg, tmp_path):
    regmix = run_search(_search(tiny_cfg, tmp_path, "search=regmix", "search.proxies=3"))
    assert regmix["regression"]["proxies"] == 3 and regmix["chosen"] is not None
    proxies = 3 * 0.5  # three distinct points for one of two epochs, then the chosen one to the end
    assert regmix["total_runs"] in (pytest.approx(proxies + 0.5), pytest.approx(proxies + 1.0))
    hybrid = run_search(tiny_cfg(f"search.dir={tmp_path}/hybrid", "search=hybrid", "search.source=alphavil"))
    assert set(hybrid["learned_weights"]) == {"right"} and hybrid["total_runs"] == pytest.approx(2.0)


def test_the_same_folder_with_another_search_is_refused_before_training(tiny_cfg, tmp_path):
    run_search(_search(tiny_cfg, tmp_path, "search=grid", "search.space.weights=[0,1]"))
    before = sorted(p.name for p in (tmp_path / "search" / "trials").iterdir())
    with pytest.raises(ConfigError, match=r"another configuration.*search.space"):
        run_search(_search(tiny_cfg, tmp_path, "search=grid", "search.space.weights=[0,3]"))
    assert sorted(p.name for p in (tmp_path / "search" / "trials").iterdir()) == before
    # an option the grid never reads (the halving pool's size) changes nothing: the grid continues
    again = run_search(_search(tiny_cfg, tmp_path, "search=grid", "search.space.weights=[0,1]", "search.n_points=1"))
    assert sorted(p.name for p in (tmp_path / "search" / "trials").iterdir()) == before and again["chosen"]
    # the run's length defines the search: the message names it (not a trial's learning-rate schedule)
    with pytest.raises(ConfigError, match=r"trainer.max_epochs: 2 in the folder's search, 3 now"):
        run_search(_search(tiny_cfg, tmp_path, "search=grid", "search.space.weights=[0,1]", "trainer.max_epochs=3"))


def test_a_first_start_that_trained_nothing_does_not_claim_the_folder(tiny_cfg, tmp_path):
    """A typo refused before any trial trained (here a hybrid's source method) is not a search to protect: the
    corrected command takes the folder; the typo is not recorded as a trial's failure."""
    with pytest.raises(Exception, match="bogus"):
        run_search(_search(tiny_cfg, tmp_path, "search=hybrid", "search.source=bogus"))
    assert (tmp_path / "search" / "search_record.json").exists()
    assert not list((tmp_path / "search").glob("trials/*/failed.json"))
    result = run_search(_search(tiny_cfg, tmp_path, "search=grid", "search.space.weights=[0]"))
    assert result["chosen"]["key"] == "single" and result["total_runs"] == pytest.approx(1.0)


def test_tpe_that_never_left_its_random_start_up_says_so(tiny_cfg, tmp_path):
    result = run_search(_search(tiny_cfg, tmp_path, "search=tpe", "search.max_runs=1", "search.space.weights=[0,1]"))
    assert any("random start-up proposals" in w and "search=random" in w for w in result["warnings"])


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["search.space.weights=[]"], "the search space is empty"),
        (["search.space.weights=[0,-1]"], "must be a list of finite weights >= 0"),
        (["search.space.low=3", "search.space.high=0.1"], "a log range needs 0 < low < high"),
        (["search.space.low=-1", "search.space.high=3"], "a log range needs 0 < low < high"),
        (["search.eta=1"], "eta=1: must be an integer >= 2"),
        (["search.max_trials=0"], "max_trials=0: must be >= 1"),
        (["search.max_runs=0.5"], "max_runs=0.5: must be at least 1"),
        (["+search.space.per_task={left_coarse: [0, 1]}"], "per_task names left_coarse, not an auxiliary"),
        (["search.storage=postgresql://nobody@127.0.0.1:1/none"], "the study cannot be opened"),
        (["search.space.batching=[blocks]"], "each must be one of mixed, sampled"),
        (["+search.space.params={task.batch_size: []}"], "an empty list leaves nothing to search"),
    ],
)
def test_bad_search_options_fail_before_any_training(tiny_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_search(_search(tiny_cfg, tmp_path, "search=halving", *overrides))
    assert not (tmp_path / "search" / "trials").exists()


def test_a_search_without_a_strategy_is_refused(tiny_cfg):
    with pytest.raises(ConfigError, match="choose a strategy: search=grid"):
        run_search(tiny_cfg())


@pytest.mark.slow
def test_src_run_refuses_a_search_option(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "src.run", "search=grid", "debug=tiny", "logger=none", f"paths.log_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "python -m src.search" in result.stderr


# --- several processes, kills (subprocesses) -------------------------------------------------------
def _command(tiny_data, tmp_path, folder: Path, *extra: str) -> list[str]:
    overrides = [o for o in TINY if not o.startswith("ckpt_path")]
    return [
        sys.executable,
        "-m",
        "src.search",
        *overrides,
        f"paths.data_dir={tiny_data}",
        f"paths.cache_dir={tmp_path}/cache",
        f"paths.log_dir={tmp_path}/logs",
        f"search.dir={folder}",
        "search.poll_seconds=0.5",
        *extra,
    ]


def _uninterrupted(tiny_data, tmp_path, folder: Path, *extra: str) -> None:
    """The search an interrupted one must match, run whole in this process: the command's overrides, one thread as
    its subprocesses have (the same sums in the same order), and no interpreter to start (a Lightning import costs
    about 10 s of a core)."""
    import torch

    from tests.conftest import compose_config

    overrides = _command(tiny_data, tmp_path, folder, *extra)[3:]  # after `python -m src.search`
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_search(compose_config(overrides, output_dir=tmp_path / "uninterrupted"))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_two_workers_on_one_study_run_every_trial_once(tiny_data, tmp_path):
    folder = tmp_path / "shared"
    command = _command(tiny_data, tmp_path, folder, "search=halving", "search.space.weights=[0,0.1,0.3,1,3,10]")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [w.communicate(timeout=600)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    result = json.loads((folder / "search.json").read_text())
    # 6 points, eta 3, 2 epochs: rungs at 1 and 2 epochs, 6 → 2 points
    assert result["total_runs"] == pytest.approx(6 * 0.5 + 2 * 0.5)
    log = (folder / "search.log").read_text()  # both workers log into the search's folder
    trained = [line for line in log.splitlines() if "search: started" in line or "search: promoted" in line]
    assert len(trained) == 6 + 2  # each segment of each trial by one worker only
    workers_that_trained = {line.rsplit("worker ", 1)[1] for line in trained}
    assert len(workers_that_trained) == 2  # the work was shared
    for trial in (folder / "trials").iterdir():
        segments = json.loads((trial / "segments.json").read_text())
        assert sorted(segments) == (
            ["1", "2"] if trial.name in {t["key"] for t in result["trials"] if t["epochs"] == 2} else ["1"]
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy",
    [
        ("search=halving",),
        # a model-based search: its seeded sampler proposes the same first points again, and the trial the killed
        # worker left running must be continued, not counted
        ("search=tpe", "search.max_trials=3", "search.max_runs=10", "trainer.max_epochs=3"),
        ("search=conditional",),  # a source run, then a fixed one
    ],
    ids=["halving", "tpe", "conditional"],
)
def test_a_search_killed_mid_way_continues_with_the_same_command(strategy, tiny_data, tmp_path):
    whole = tmp_path / "whole"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    _uninterrupted(tiny_data, tmp_path, whole, *strategy)
    folder = tmp_path / "killed"
    command = _command(tiny_data, tmp_path, folder, *strategy)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # halving: after two trials' first rungs; the others: once the second trial has started, a second into it
    pattern = "trials/*/results.json" if strategy[0] == "search=halving" else "trials/*"
    while len(list(folder.glob(pattern))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0 if strategy[0] == "search=halving" else 1.0)
    proc.send_signal(signal.SIGKILL)  # no handler runs: locks and checkpoints are left as they are
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("trials/*/results.json")}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    result = json.loads((folder / "search.json").read_text())
    expected = json.loads((whole / "search.json").read_text())
    assert result["total_runs"] == pytest.approx(expected["total_runs"])
    assert {t["key"]: t["state"] for t in result["trials"]} == {t["key"]: t["state"] for t in expected["trials"]}
    assert result["chosen"]["key"] == expected["chosen"]["key"]
    assert result["chosen"]["dev"] == pytest.approx(expected["chosen"]["dev"])
    for key, mtime in finished.items():
        record = json.loads((folder / "trials" / key / "results.json").read_text())
        if record["epochs"] == 1 and (folder / "trials" / key / "stopped.json").exists():
            assert (folder / "trials" / key / "results.json").stat().st_mtime_ns == mtime  # not trained again


@pytest.mark.slow
def test_sigterm_names_the_searchs_command_and_running_it_finishes_the_search(tiny_data, tmp_path):
    """A search stopped by SIGTERM mid-trial says to run the search's own command (not the trial as a run of
    src.run, whose time the search would never count); that command finishes with an uninterrupted search's cost."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    _uninterrupted(tiny_data, tmp_path, whole, "search=halving")
    folder = tmp_path / "stopped"
    command = _command(tiny_data, tmp_path, folder, "search=halving")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(folder.glob("trials/*/results.json")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # into the second trial
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    said = out + err
    assert "Continue the search" in said and "python -m src.search" in said and f"search.dir={folder}" in said
    assert "python -m src.run" not in said
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    result, expected = (json.loads((f / "search.json").read_text()) for f in (folder, whole))
    assert result["total_runs"] == pytest.approx(expected["total_runs"])
    assert result["chosen"]["key"] == expected["chosen"]["key"]


# --- the frontier ---------------------------------------------------------------------------------
def _run(folder: Path, method: str, seed: int, dev: list[float], test: float, weight: float | None, batching: str):
    folder.mkdir(parents=True)
    alone = weight is None
    record = {
        "target": "left",
        "method": method,
        "method_choice": method.lower(),
        "task_config": "toy",
        "tasks": ["left", "aux"],
        "target_dev": max(dev),
        "target_test": test,
        "dev_history": dev,
        "seed": seed,
        "epochs": len(dev),
        "schedule": "target" if alone else batching,
        "weights": {"left": 1.0, "aux": 0.0 if alone else weight},
        "budget": {"rule": "equal", "per_epoch": {"left": 10, "aux": 10}, "batching": batching},
        "dev_examples": 100,
        "optimizer_steps": 10,
        "passes": {"forward": 10, "backward": 10},
        "weight_history": [{"left": 1.0, "aux": weight or 0.0}] * len(dev),
    }
    (folder / "results.json").write_text(json.dumps(record))


def test_the_frontier_states_the_oracle_the_grid_curve_and_the_replayed_strategies(tmp_path):
    from experiments.frontier import best_of_k, frontier, write_report

    assert best_of_k([(0.9, 0.5), (0.8, 0.7), (0.1, 0.2)], 1) == pytest.approx((0.5 + 0.7 + 0.2) / 3)
    assert best_of_k([(0.9, 0.5), (0.8, 0.7), (0.1, 0.2)], 2) == pytest.approx((0.5 + 0.5 + 0.7) / 3)
    assert best_of_k([(0.9, 0.5), (0.8, 0.7), (0.1, 0.2)], 3) == pytest.approx(0.5)
    for seed in (0, 1, 2):
        _run(tmp_path / f"s{seed}/single", "SingleTask", seed, [0.1, 0.2, 0.3], 0.30 + seed / 100, None, "mixed")
        _run(tmp_path / f"s{seed}/w1", "Uniform", seed, [0.2, 0.3, 0.6], 0.60 + seed / 100, 1.0, "sampled")
        _run(tmp_path / f"s{seed}/w3", "Static", seed, [0.3, 0.4, 0.5], 0.50, 3.0, "sampled")
        _run(tmp_path / f"s{seed}/avil", "AlphaVIL", seed, [0.1, 0.2, 0.4], 0.55, 0.8, "blocks")
    tables = frontier([tmp_path])
    (table,) = tables.values()
    assert table["oracle"] == "aux-1_sampled" and table["grid_points"] == 3
    rows = table["rows"]
    assert rows["grid, best of 3"]["test"] == {0: 0.60, 1: 0.61, 2: 0.62}
    assert rows["alphavil"]["cost"] == {0: 1.0, 1: 1.0, 2: 1.0}
    halving = rows["replay: halving η=3"]
    # rung at 1 epoch keeps w3 (best dev 0.3), which ends below the oracle: a strategy can miss
    assert halving["test"] == {0: 0.50, 1: 0.50, 2: 0.50}
    assert halving["cost"][0] == pytest.approx((3 * 1 + 1 * 2) / 3)
    assert table["early"][1] == pytest.approx(0.5)  # ρ of (0.1, 0.2, 0.3) with (0.3, 0.6, 0.5)
    assert frontier([tmp_path]) == tables  # a replay is reproducible (its pruner's brackets hash the study's name)
    report = write_report(tables, tmp_path / "out", [tmp_path]).read_text()
    assert "| replay: halving η=3 | 1.67 | 0.5000 ± 0.0000 | -11.00 ± 2.48 |" in report


def test_the_study_lock_is_re_entered_by_its_holder_and_still_excludes_another_process(tmp_path):
    import multiprocessing

    from src.lock import file_lock as _flock

    lock = tmp_path / ".study.lock"
    with _flock(lock), _flock(lock):  # a stop that looks up its trial takes the lock again: no wait on itself
        child = multiprocessing.get_context("fork").Process(target=_hold_briefly, args=(lock,))
        child.start()
        child.join(1.0)
        assert child.is_alive()  # another process waits while this one holds it
    child.join(10.0)
    assert child.exitcode == 0


def _hold_briefly(lock):
    from src.lock import file_lock as _flock

    with _flock(lock):
        pass


def test_a_live_grid_search_defines_the_frontiers_grid(tmp_path):
    """Fixed runs beside a grid search (a learned-method sweep's uniform) do not join its grid."""
    from experiments.frontier import frontier

    for seed in (0, 1):
        trials = tmp_path / f"grid{seed}" / "trials"
        _run(trials / "single", "SingleTask", seed, [0.1, 0.2, 0.3], 0.30, None, "mixed")
        _run(trials / "aux-1_sampled", "Uniform", seed, [0.2, 0.3, 0.6], 0.60, 1.0, "sampled")
        trials_done = [{"key": "single", "state": "complete"}, {"key": "aux-1_sampled", "state": "complete"}]
        record = {"strategy": "grid", "options": {"strategy": "grid"}, "target": "left", "seed": seed}
        record |= {"full_epochs": 3, "total_runs": 2.0, "chosen": {"key": "aux-1_sampled"}, "trials": trials_done}
        (tmp_path / f"grid{seed}" / "search.json").write_text(json.dumps(record))
        _run(tmp_path / f"methods/s{seed}/uniform_mixed", "Uniform", seed, [0.3, 0.5, 0.9], 0.50, 1.0, "mixed")
    (table,) = frontier([tmp_path]).values()
    assert table["grid_points"] == 2 and table["oracle"] == "aux-1_sampled"
    beside = table["rows"]["fixed, beside the grid: uniform · mixed"]  # shown, at one run each, not the oracle
    assert beside["test"] == {0: 0.50, 1: 0.50} and beside["cost"] == {0: 1.0, 1: 1.0} and beside["kind"] == "fixed"


def test_a_batching_the_grid_does_not_hold_is_beside_it_not_its_oracle_nor_a_replays_point(tmp_path):
    """Uniform on step-matched batches, run at every seed beside a mixed/sampled grid, is a row of its own: the oracle
    and every replayed search's pool stay the grid's (a search over mixed and sampled could not propose it), unless
    --grid-batching names its batching."""
    import experiments.frontier as frontier_module
    from experiments.frontier import frontier

    for seed in (0, 1, 2):
        _run(tmp_path / f"s{seed}/single", "SingleTask", seed, [0.1, 0.2, 0.3], 0.30, None, "mixed")
        _run(tmp_path / f"s{seed}/w1", "Uniform", seed, [0.2, 0.3, 0.6], 0.60, 1.0, "sampled")
        _run(tmp_path / f"s{seed}/w1m", "Uniform", seed, [0.15, 0.3, 0.5], 0.55, 1.0, "mixed")
        _run(tmp_path / f"s{seed}/matched", "Uniform", seed, [0.5, 0.7, 0.9], 0.70 + seed / 100, 1.0, "matched")
    (table,) = frontier([tmp_path]).values()
    assert table["oracle"] == "aux-1_sampled" and table["grid_points"] == 3 and table["beside"] == 1
    rows = table["rows"]
    assert rows["fixed, beside the grid: uniform · matched"]["test"] == {0: 0.70, 1: 0.71, 2: 0.72}
    assert rows["replay: halving η=3"]["test"] == {0: 0.60, 1: 0.60, 2: 0.60}  # matched's better dev not proposed
    assert rows["grid, best of 3"]["test"] == {0: 0.60, 1: 0.60, 2: 0.60}
    (wider,) = frontier([tmp_path], batchings=("mixed", "sampled", "matched")).values()
    assert wider["oracle"] == "aux-1_matched" and wider["grid_points"] == 4 and not wider["beside"]
    with pytest.raises(SystemExit):
        frontier_module.main([str(tmp_path), "--grid-batching", "mixed,blocks", "--no-replay"])


def test_a_replay_builds_the_sampler_and_pruner_its_options_name(tmp_path, monkeypatch):
    """The frontier replays a strategy with the live search's own Optuna parts: a replayed gp with the halving
    pruner from epoch 2 runs GPSampler and SuccessiveHalvingPruner(min_resource=2), not a copy's TPE + Hyperband."""
    import optuna

    import experiments.frontier as frontier_module
    from src.schema import SearchConfig
    from src.search.registry import sampler_and_pruner

    sampler, pruner = sampler_and_pruner(SearchConfig(strategy="gp", pruner="halving", min_epochs=2, eta=3, seed=5))
    assert isinstance(sampler, optuna.samplers.GPSampler)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner) and pruner._min_resource == 2
    assert isinstance(
        sampler_and_pruner(SearchConfig(strategy="random", pruner="none", seed=0))[1], optuna.pruners.NopPruner
    )
    built = []

    def recording(options):
        built.append((options.strategy, options.pruner, options.min_epochs))
        return sampler_and_pruner(options)

    monkeypatch.setattr(frontier_module, "sampler_and_pruner", recording)
    monkeypatch.setattr(
        frontier_module, "REPLAYS", {"gp": {"strategy": "gp", "pruner": "halving", "min_epochs": 2, "max_runs": 2.0}}
    )
    for seed in (0, 1):
        _run(tmp_path / f"s{seed}/w0", "SingleTask", seed, [0.1, 0.2, 0.3], 0.3, None, "mixed")
        _run(tmp_path / f"s{seed}/w1", "Uniform", seed, [0.2, 0.3, 0.6], 0.6, 1.0, "sampled")
        _run(tmp_path / f"s{seed}/w3", "Static", seed, [0.3, 0.4, 0.5], 0.5, 3.0, "sampled")
    frontier_module.frontier([tmp_path])
    assert built == [("gp", "halving", 2), ("gp", "halving", 2)]  # one study per seed


def test_the_frontier_replays_a_recorded_conditional_run(tmp_path):
    """search=conditional replayed on a recorded grid: the conditional run's λ* as the grid's fixed run, chosen on
    dev against the conditional model at λ*; its cost is the conditional run with its scoring, and the fixed run."""
    from experiments.frontier import frontier

    for seed in (0, 1):
        _run(tmp_path / f"s{seed}/w0", "SingleTask", seed, [0.1, 0.2, 0.3], 0.30, None, "mixed")
        _run(tmp_path / f"s{seed}/w1", "Uniform", seed, [0.2, 0.3, 0.6], 0.60, 1.0, "sampled")
        _run(tmp_path / f"s{seed}/w3", "Static", seed, [0.3, 0.4, 0.5], 0.50, 3.0, "sampled")
        _run(tmp_path / f"s{seed}/cond", "Conditional", seed, [0.2, 0.3, 0.4], 0.55, 1.0, "sampled")
        record = json.loads((tmp_path / f"s{seed}/cond/results.json").read_text())
        dev = 0.45 if seed == 0 else 0.65  # seed 0: the fixed run at λ* wins on dev; seed 1: the model itself
        record["conditional"] = {"conditioned": True, "chosen": {"aux": 3.0}, "chosen_dev": dev, "runs": 0.2,
                                 "table": [{"weights": {"aux": 3.0}, "dev": dev, "rank": 0}]}  # fmt: skip
        (tmp_path / f"s{seed}/cond/results.json").write_text(json.dumps(record))
    # an ablation of the method on seed 0 (another recipe, read after the plain run): not the replay's source
    _run(tmp_path / "s0/z_ablation", "Conditional", 0, [0.2, 0.3, 0.4], 0.10, 1.0, "sampled")
    record = json.loads((tmp_path / "s0/z_ablation/results.json").read_text())
    record["overrides"] = ["method.per=batch"]
    record["conditional"] = {"conditioned": True, "chosen": {"aux": 1.0}, "chosen_dev": 0.9, "runs": 0.2,
                             "table": [{"weights": {"aux": 1.0}, "dev": 0.9, "rank": 0}]}  # fmt: skip
    (tmp_path / "s0/z_ablation/results.json").write_text(json.dumps(record))
    rows = frontier([tmp_path])[next(iter(frontier([tmp_path])))]["rows"]
    assert rows["conditional · sampled"]["cost"] == {0: 1.2, 1: 1.2}  # the scoring counted beside the run
    replay = rows["replay: conditional, λ* fixed"]
    assert replay["test"] == {0: 0.50, 1: 0.55}  # the grid's run at aux 3 (dev 0.5 > 0.45), then the model's
    assert replay["cost"] == {0: pytest.approx(2.2), 1: pytest.approx(2.2)}


def test_the_strategy_side_imports_neither_torch_nor_lightning():
    import subprocess
    import sys

    code = (
        "import sys, src.search.strategies, src.search.space, src.search.registry, src.search.replay; "
        "print(sorted(m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_report_on_a_search_folder_leaves_out_untested_and_failed_trials_by_name(tmp_path):
    """A committed live search's folder: trials it stopped at a rung were never tested, and a trial it recorded as
    failed is not a result; the report names both and tables the rest."""
    import shutil

    from experiments.report import report

    runs = ROOT / "experiments/results/search/runs"
    tested = sorted(p.parent for p in (runs / "k4_tpe/seed0/trials").glob("*/results.json"))[:2]
    stopped = next(
        p.parent
        for p in sorted((runs / "k4_halving20/seed0/trials").glob("*/results.json"))
        if json.loads(p.read_text())["target_test"] is None
    )
    for folder in (*tested, stopped):
        shutil.copytree(folder, tmp_path / "trials" / folder.name)
    tested, stopped = [f.name for f in tested], stopped.name
    (tmp_path / "trials" / tested[1] / "failed.json").write_text(json.dumps({"error": "RuntimeError: boom"}))
    text = report(tmp_path).read_text()
    assert f"`trials/{stopped}`: no test score: a search's trial stopped before the full run" in text
    assert f"`trials/{tested[1]}`: its search recorded this trial as failed" in text
    assert "1 runs with results" in text


def test_a_report_on_a_folder_without_runs_says_so_and_writes_nothing(tmp_path):
    from experiments.report import report

    with pytest.raises(FileNotFoundError, match="nothing to report"):
        report(tmp_path)
    assert not (tmp_path / "report").exists()


# --- several workers on a real database --------------------------------------------------------------------
def _postgres_binaries() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian's postgresql package: /usr/lib/postgresql/<v>/bin)."""
    import shutil

    if (found := shutil.which("pg_ctl")) and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgres(tmp_path):
    """A throwaway PostgreSQL server on 127.0.0.1 (trust authentication, a data folder in tmp_path), stopped after
    the test; its URL. Skipped, with the reason, where the server or the driver is not installed (`make postgres`
    installs both; CI does)."""
    import getpass
    import shutil
    import socket

    pytest.importorskip("psycopg", reason="the PostgreSQL driver is an extra: pip install -e .[postgres]")
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server here (make postgres installs Debian's postgresql package)")
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="alphavil-pg-"))  # under /tmp: the server's user must reach it
    data = home / "data"
    as_user: list[str] = []
    if getpass.getuser() == "root":  # initdb refuses root: the server runs as the package's postgres user
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
        home.chmod(0o777)
    with socket.socket() as s:  # a free port on the loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {data}"
    start = [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"]
    subprocess.run(start, check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["postgresql", "journal"])
def test_three_workers_one_killed_run_every_trial_once(storage, tiny_data, tmp_path, request):
    """docs/search.md's several machines, on one: three workers of one search share a study (on PostgreSQL, or on
    the search folder's journal file); one is killed mid-trial (SIGKILL) and started again. The search completes
    with the trials and total_runs of a one-worker search, each trial's segments recorded once."""
    postgres = request.getfixturevalue("postgres") if storage == "postgresql" else None
    alone = tmp_path / "alone"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    space = ("search=halving", "search.space.weights=[0,0.1,0.3,1,3,10]")
    _uninterrupted(tiny_data, tmp_path, alone, *space)
    folder = tmp_path / "shared"
    command = _command(tiny_data, tmp_path, folder, *space, *([f"search.storage={postgres}"] if postgres else []))
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    deadline = time.time() + 300
    while not list(folder.glob("trials/*/results.json")) and time.time() < deadline:
        time.sleep(0.2)
    workers[0].send_signal(signal.SIGKILL)  # mid-way: no handler runs, its trial's lock and folder stay as they are
    workers[0].wait()
    workers[0] = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    logs = [w.communicate(timeout=600)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], logs
    result = json.loads((folder / "search.json").read_text())
    expected = json.loads((alone / "search.json").read_text())
    assert result["total_runs"] == pytest.approx(expected["total_runs"])
    assert {t["key"]: t["state"] for t in result["trials"]} == {t["key"]: t["state"] for t in expected["trials"]}
    assert result["chosen"]["key"] == expected["chosen"]["key"]
    for trial in (folder / "trials").iterdir():  # each segment recorded once, whoever trained it
        segments = json.loads((trial / "segments.json").read_text())
        assert len(segments) == len(set(segments)) and set(segments) <= {"1", "2"}
    if postgres:
        import optuna

        study = optuna.load_study(study_name="search", storage=postgres)
        assert len({t.user_attrs.get("key") for t in study.trials}) == len(result["trials"])  # one study, every trial


def test_the_frontier_figure_numbers_points_without_overlap_and_draws_intervals(tmp_path):
    """Points at one compute (every learned method at 1 run) get their numbers a line apart; each point carries its
    95% interval; the report's table numbers the rows as the figure does."""
    from experiments.frontier import _label_points, plot

    class Axes:
        def __init__(self):
            self.labels = []

        def annotate(self, text, xy, xytext=None, **kwargs):
            self.labels.append((text, xytext))

    ax = Axes()
    _label_points(ax, [(str(i), 1.0, -3.5 - 0.01 * i) for i in range(1, 9)] + [("9", 10.0, 0.0)])
    column = sorted(y for text, (x, y) in ax.labels if text != "9")
    assert len(column) == 8 and min(b - a for a, b in zip(column, column[1:])) > 0.04
    figure = plot("toy", [("1", "learned", 1.0, -3.0, 0.5), ("", "grid", 2.0, -1.0, 0.2)], tmp_path)
    assert figure is not None and figure.exists()
