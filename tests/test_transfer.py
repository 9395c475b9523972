"""The transfer report on hand-made results folders: measured effects, learned weights, correlations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments.transfer import agreement, learned_weight, order, orders, points, spearman, transfer_report


def result(setting: str, choice: str, seed: int, test: float, dev: float, aux: list[str], **fields) -> dict:
    schedule = "target" if choice == "single_task" else fields.pop("schedule", "sampled")
    weights = fields.pop("weights", {a: 0.0 if choice == "single_task" else 1.0 for a in aux})
    return {
        "target": "t",
        "task_config": setting,
        "target_metric": "accuracy",
        "method": choice,
        "method_choice": choice,
        "overrides": fields.pop("overrides", []),
        "seed": seed,
        "target_test": test,
        "target_dev": dev,
        "tasks": ["t", *aux],
        "schedule": schedule,
        "weights": {"t": 1.0, **weights},
        **fields,
    }


def grid(setting: str, aux: list[str], rows: dict[str, tuple[dict, list[float], float]]) -> list[dict]:
    """``rows``: key → (aux weights, test per seed, dev); single_task when every weight is 0."""
    out = []
    for weights, tests, dev in rows.values():
        choice = "single_task" if not any(weights.values()) else "static"
        overrides = [f"method.weights={json.dumps(weights)}"] if choice == "static" else []
        for seed, test in enumerate(tests):
            out.append(result(setting, choice, seed, test, dev, aux, weights=weights, overrides=overrides))
    return out


def learned(setting: str, aux: list[str], history: list[dict]) -> list[dict]:
    return [result(setting, "alphavil", s, 0.8, 0.8, aux, schedule="blocks", weight_history=history) for s in range(3)]


def runs_of(tmp_path: Path, results: list[dict]) -> Path:
    for i, r in enumerate(results):
        folder = tmp_path / "runs" / f"run{i}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(r))
    return tmp_path / "runs"


ONE = grid(
    "one",
    ["a"],
    {
        "st": ({"a": 0.0}, [0.80, 0.82, 0.81], 0.80),
        "w0.3": ({"a": 0.3}, [0.83, 0.84, 0.83], 0.86),  # best on dev: the oracle
        "w1": ({"a": 1.0}, [0.81, 0.83, 0.80], 0.84),
    },
)
TWO = grid(
    "two",
    ["a", "b"],
    {
        "st": ({"a": 0.0, "b": 0.0}, [0.70, 0.70, 0.70], 0.70),
        "a1": ({"a": 1.0, "b": 0.0}, [0.75, 0.76, 0.74], 0.76),  # the oracle
        "a1b1": ({"a": 1.0, "b": 1.0}, [0.72, 0.73, 0.74], 0.73),
        "a1b0.3": ({"a": 1.0, "b": 0.3}, [0.74, 0.75, 0.73], 0.74),
    },
)


def test_measured_effects_hold_the_other_weights_at_the_oracle():
    pts = {(p["setting"], p["aux"]): p for p in points(ONE + TWO)}
    one = pts["one", "a"]
    # best a-weight on dev 0.3 vs single-task: +.03, +.02, +.02 → mean .02333, sd .005774, t(2) 4.303 → ± .01434
    assert one["reference"] == "single_task" and one["best_weight"] == 0.3
    assert one["best"][0] == pytest.approx(0.023333, abs=1e-6) and one["best"][1] == pytest.approx(0.014343, abs=1e-5)
    assert one["at_1"][0] == pytest.approx(0.003333, abs=1e-6)
    # b's effect is measured beside a at 1 (the oracle's): the best b-weight on dev is 0.3, against a=1, b=0
    b = pts["two", "b"]
    assert b["reference"].startswith("static (weights=") and '"b": 0.0' in b["reference"]
    assert b["best_weight"] == 0.3 and b["best"][0] == pytest.approx(-0.01, abs=1e-9)
    assert b["at_1"][0] == pytest.approx(-0.02, abs=1e-9)
    assert pts["two", "a"]["best"][0] == pytest.approx(0.05, abs=1e-9)  # a at 1 (b at 0) vs single-task


def test_learned_weight_is_the_mean_ratio_to_the_target_over_the_last_half():
    history = [{"t": 1.0, "a": 9.0}, {"t": 1.0, "a": 9.0}, {"t": 2.0, "a": 1.0}, {"t": 0.5, "a": 1.0}]
    assert learned_weight([{"tasks": ["t", "a"], "weight_history": history}], "a") == pytest.approx((0.5 + 2.0) / 2)
    # a target weight of 0 (ForkMerge's target branch at λ = 0) leaves that epoch out
    zero = [{"t": 1.0, "a": 1.0}, {"t": 0.0, "a": 1.0}, {"t": 1.0, "a": 3.0}]
    assert learned_weight([{"tasks": ["t", "a"], "weight_history": zero}], "a") == pytest.approx(3.0)


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3) and (1.5, 1.5, 3): ρ = Pearson of the ranks = 0.866
    assert spearman([1, 2, 3], [5, 5, 9]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([1, 2], [1, 2]))


def test_agreement_and_report_with_a_method_and_the_probe(tmp_path):
    # αVIL: a weighs 0.8 in "one", a 0.9 and b 0.1 in "two"; effects +.0233, +.05, −.01 → ranks agree: ρ = 1
    method = learned("one", ["a"], [{"t": 1.0, "a": 0.8}] * 2) + learned(
        "two", ["a", "b"], [{"t": 1.0, "a": 0.9, "b": 0.1}] * 2
    )
    probe = {"lookahead": {"t": 0.1, "a": -0.01, "b": 0.02}, "cosine": {}, "influence": {}, "probed_steps": {"t": 4}}
    probed = [result("two", "uniform", s, 0.7, 0.7, ["a", "b"], schedule="mixed", relatedness=probe) for s in range(2)]
    pts = points(ONE + TWO + method + probed)
    assert agreement(pts, "alphavil") == (pytest.approx(1.0), pytest.approx(math.nan, nan_ok=True), 3)
    rho, sign, count = agreement(pts, "probe: lookahead")  # a helps (−0.01: wrong sign), b hurts (0.02: wrong)
    assert count == 2 and sign == 0.0 and math.isnan(rho)  # two points: no ρ
    path = transfer_report([runs_of(tmp_path, ONE + TWO + method + probed)], tmp_path / "out")
    text = path.read_text()
    assert "| alphavil | 3 | +1.00 | – |" in text
    assert "| probe: lookahead | 2 | – | 0% |" in text
    assert (tmp_path / "out" / "transfer.png").stat().st_size > 0


def test_a_point_without_shared_seeds_is_left_out_of_the_agreement():
    pts = [
        {"best": (0.02, 0.01), "values": {"m": 1.0}},
        {"best": (-0.01, 0.01), "values": {"m": 0.2}},
        {"best": (0.03, 0.01), "values": {"m": 2.0}},
        {"best": (math.nan, math.nan), "values": {"m": 9.0}},  # no seeds in common: no effect measured
    ]
    rho, _, count = agreement(pts, "m")
    assert count == 3 and rho == pytest.approx(1.0)


def test_probed_runs_get_a_row_of_their_own():
    from experiments.report import method_key

    run = result("one", "uniform", 0, 0.8, 0.8, ["a"], schedule="mixed")
    assert method_key(run) == "uniform · mixed"
    assert method_key({**run, "relatedness": {"probed_steps": {"t": 3}}}) == "uniform · mixed · probed"


def test_order_run_by_run_agrees_levels_or_reverses():
    effects = {"a": 0.05, "b": -0.01, "c": 0.02}  # a > c > b
    assert order({"a": 0.9, "b": 0.1, "c": 0.5}, effects) == "agrees"
    assert order({"a": 0.9, "b": 0.1, "c": 0.895}, effects) == "level"  # a and c within 1% of 0.9
    assert order({"a": 0.9, "b": 0.1, "c": 0.92}, effects) == "against"  # c above a by 2%
    assert order({"a": 0.9, "b": 0.9, "c": 0.1}, effects) == "against"  # a reversal outweighs a level pair
    assert order({"a": 1.0, "b": 1.0}, {"a": 0.01, "b": 0.01}) is None  # equal effects: nothing to order
    assert order({"a": 1.0, "b": 2.0}, {"a": 0.01, "b": math.nan}) is None


def test_orders_count_each_learning_methods_runs_on_settings_with_two_auxiliaries(tmp_path):
    # "two": a's effect +.05, b's −.01 (test_measured_effects_...): seeds 0 and 1 put a above b, seed 2 below
    histories = [[{"t": 1.0, "a": 0.9, "b": 0.1}], [{"t": 2.0, "a": 1.0, "b": 0.5}], [{"t": 1.0, "a": 0.2, "b": 0.3}]]
    method = [
        result("two", "alphavil", s, 0.7, 0.7, ["a", "b"], schedule="blocks", weight_history=h * 2)
        for s, h in enumerate(histories)
    ]
    one = learned("one", ["a"], [{"t": 1.0, "a": 0.8}] * 2)  # one auxiliary: no order to count
    rows = orders(ONE + TWO + method + one)
    assert [(r["setting"], r["method"], r.get("agrees"), r.get("against")) for r in rows] == [("two", "alphavil", 2, 1)]
    text = transfer_report([runs_of(tmp_path, ONE + TWO + method)], tmp_path / "out").read_text()
    assert "| alphavil | 3 | 2 | 0 | 1 |" in text
