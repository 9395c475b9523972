"""Loss-conditional training: the FiLM conditioner, method=conditional, its scoring, search=conditional."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from src.config import ConfigError, validate
from src.data.tasks import TaskSpec
from src.methods.conditional import Conditional
from src.models.conditioning import CONDITION, weight_features
from src.models.lenet import multi_lenet
from src.search.command import run_search
from src.train import build, train
from tests.conftest import compose_config

TASKS = [TaskSpec("left", 10), TaskSpec("a", 10), TaskSpec("b", 2)]
ON = {"enabled": True, "hidden": 8}


def _batch(n: int = 4, weights: list[float] | None = None) -> dict[str, torch.Tensor]:
    batch = {"x": torch.randn(n, 1, 28, 28), "labels": torch.zeros(n, dtype=torch.long)}
    if weights is not None:
        batch[CONDITION] = torch.tensor(weights).expand(n, -1)
    return batch


# --- the conditioner ----------------------------------------------------------------------------------
def test_weight_features_take_the_log_and_flag_dropped_auxiliaries():
    features = weight_features(torch.tensor([[1.0, 0.0, 0.3]]))
    assert torch.allclose(features, torch.tensor([[0.0, 0.0, math.log(0.3), 0.0, 1.0, 0.0]]))


def test_an_untrained_conditioner_is_the_identity_and_a_trained_one_depends_on_the_weights():
    torch.manual_seed(0)
    plain = multi_lenet(TASKS)
    torch.manual_seed(0)
    conditioned = multi_lenet(TASKS, condition=ON)
    conditioned.load_state_dict(plain.state_dict(), strict=False)  # the same trunk and heads
    plain.eval(), conditioned.eval()
    batch = _batch(weights=[1.0, 0.0])
    assert torch.equal(plain("left", batch), conditioned("left", batch))  # γ = 1, β = 0 at the start
    with torch.no_grad():
        conditioned.conditioner.mlp[-1].weight.normal_()
    at_one, at_zero = conditioned("left", _batch(weights=[1.0, 1.0])), conditioned("left", _batch(weights=[1.0, 0.0]))
    assert not torch.allclose(at_one, at_zero)
    # a batch without weights is conditioned on the default, one λ for every example
    conditioned.conditioner.default.copy_(torch.tensor([1.0, 0.0]))
    x = _batch(weights=[1.0, 0.0])
    without = {k: v for k, v in x.items() if k != CONDITION}
    assert torch.equal(conditioned("left", x), conditioned("left", without))


def test_each_example_is_conditioned_on_its_own_weights():
    model = multi_lenet(TASKS, condition=ON).eval()
    with torch.no_grad():
        model.conditioner.mlp[-1].weight.normal_()
    batch = _batch(2)
    batch[CONDITION] = torch.tensor([[1.0, 0.0], [0.3, 1.0]])
    together = model("left", batch)
    for i in range(2):
        alone = {k: v[i : i + 1] for k, v in batch.items()}
        assert torch.allclose(together[i], model("left", alone)[0], atol=1e-6)


def test_the_conditioner_is_shared_and_saved_once():
    model = multi_lenet(TASKS, condition={"enabled": True, "sites": ["fc"]})
    assert any(n.startswith("conditioner.") for n in model.shared_parameters())
    keys = list(model.state_dict())
    assert not any(k.startswith("conditioner.") and ".net." in k for k in keys)  # the trunk is not saved twice
    assert model.conditioner.site_names == ["fc"]


def test_a_checkpoint_of_other_auxiliaries_or_sites_is_refused_by_name():
    model = multi_lenet(TASKS, condition=ON)
    other = multi_lenet([TASKS[0], TaskSpec("c", 10), TaskSpec("b", 2)], condition=ON)
    with pytest.raises(ValueError, match=r"conditioned on auxiliaries \['c', 'b'\].*task.auxiliaries"):
        model.load_state_dict(other.state_dict())


def test_sites_a_trunk_does_not_have_and_a_trunk_without_sites_are_refused():
    with pytest.raises(ValueError, match="'conv9' is not a site of LeNetTrunk"):
        multi_lenet(TASKS, condition={"enabled": True, "sites": ["conv9"]})
    from src.models.multitask import MultiTaskModel

    with pytest.raises(ValueError, match="names no sites to condition"):
        MultiTaskModel(torch.nn.Linear(2, 2), 2, TASKS, condition=ON)


# --- the method ----------------------------------------------------------------------------------------
def _method(**options) -> Conditional:
    method = Conditional(**options)
    method.setup(TASKS, "left")
    return method


def test_draws_come_from_the_space_grid_or_range():
    grid = _method(space={"weights": [0.0, 0.3, 1.0], "per_task": {"b": [2.0]}}, reference={"b": 2.0})
    drawn = grid.draw(2000, torch.Generator().manual_seed(0))
    assert sorted(set(drawn[:, 0].tolist())) == pytest.approx([0.0, 0.3, 1.0]) and set(drawn[:, 1].tolist()) == {2.0}
    assert abs((drawn[:, 0] == 0).float().mean().item() - 1 / 3) < 0.05  # uniform over the grid
    ranged = _method(space={"weights": None, "low": 0.1, "high": 3.0, "zero": True})
    drawn = ranged.draw(4000, torch.Generator().manual_seed(0))
    kept = drawn[drawn > 0]
    assert abs((drawn == 0).float().mean().item() - 0.5) < 0.05
    assert kept.min() >= 0.1 and kept.max() <= 3.0
    assert abs(kept.log().mean().item() - (math.log(0.1) + math.log(3.0)) / 2) < 0.05  # log-uniform


def test_the_points_scored_are_the_grid_in_the_auxiliaries_order_or_seeded_draws_of_the_range():
    grid = _method(space={"weights": [0.0, 1.0]})
    assert grid.score_points(0) == [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    ranged = _method(space={"weights": None, "low": 0.1, "high": 3.0}, points=10)
    points = ranged.score_points(0)
    assert len(points) == 10 and points[0] == [1.0, 1.0] and points == ranged.score_points(0)
    assert all(ranged.in_space(i, w) for p in points for i, w in enumerate(p))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"space": {"weights": []}}, "empty grid"),
        ({"space": {"weights": None}}, "nothing to be drawn from"),
        ({"space": {"low": -1.0, "high": 1.0}}, "0 < low < high"),
        ({"space": {"low": 3.0, "high": 1.0}}, "0 < low < high"),
        ({"space": {"weights": [0.0, 0.3]}, "reference": {"a": 1.0}}, "reference.a=1 is outside the space"),
        ({"reference": {"zz": 1.0}}, "not an auxiliary"),
        ({"per": "step"}, "per='step'"),
    ],
)
def test_a_degenerate_or_invalid_distribution_is_refused_by_name(options, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        _method(**options)


def test_conditioning_with_another_method_or_a_model_that_cannot_take_it_is_refused_before_data(tmp_path):
    cfg = compose_config(["method=uniform", "model.net.condition.enabled=true"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="model.net.condition.enabled=true: method Uniform draws no weights"):
        validate(cfg)
    cfg = compose_config(["method=conditional"], output_dir=tmp_path)
    assert cfg.model.net.condition.enabled  # on by default under method=conditional
    validate(cfg)
    assert not compose_config(["method=uniform"], output_dir=tmp_path).model.net.condition.enabled


@pytest.mark.trains
def test_a_single_point_without_conditioning_trains_as_static_at_that_point(tiny_cfg):
    """With the distribution one point and the conditioning off, every example's weight is that point's: the run
    is method=static at those weights (the same steps, dropout and data; sums in another order)."""
    common = ("task.auxiliaries=[right]", "task.batching=sampled")
    static = train(tiny_cfg("method=static", "method.weights={right: 0.3}", *common))
    conditional = train(
        tiny_cfg(
            "method=conditional",
            "method.space.weights=[0.3]",
            "method.reference={right: 0.3}",
            "model.net.condition.enabled=false",
            *common,
        )
    )
    assert conditional["dev_loss_history"] == pytest.approx(static["dev_loss_history"], rel=1e-4)
    assert conditional["dev_history"] == static["dev_history"]
    assert conditional["target_test"] == static["target_test"]
    assert conditional["optimizer_steps"] == static["optimizer_steps"]
    assert conditional["examples_seen"] == static["examples_seen"]
    assert conditional["weights"] == pytest.approx(static["weights"])
    assert conditional["conditional"] == {
        "conditioned": False,
        "scored": False,
        "conditioner_parameters": 0,
        "table": [],
    }


@pytest.mark.trains
def test_a_conditional_run_scores_every_point_and_tests_at_the_best(tiny_cfg):
    results = train(
        tiny_cfg(
            "method=conditional", "method.space.weights=[0,0.3,1]", "method.top=2", "model.net.condition.hidden=16"
        )
    )
    record = results["conditional"]
    assert record["conditioned"] and record["points"] == 3 and len(record["table"]) == 3
    rescored = [r for r in record["table"] if "dev" in r]
    assert len(rescored) == 2 and {r["rank"] for r in rescored} == {0, 1}  # the two best-ranked
    best = max(rescored, key=lambda r: (r["dev"], -r["dev_loss"]))
    assert record["chosen"] == best["weights"] and results["target_dev"] == best["dev"]
    assert results["weights"] == pytest.approx({"left": 1.0, **record["chosen"]})
    # the scoring's cost: every point on the subset, the top on the whole dev split, against the training's
    dev = results["dev_examples"]
    subset = min(500, dev)
    assert record["forward_examples"] == 3 * subset + (0 if subset == dev else 2 * dev)
    assert record["runs"] == pytest.approx(record["forward_examples"] / (3 * sum(results["examples_seen"].values())))
    assert results["target_test"] is not None
    assert record["conditioner_parameters"] == (2 * 16 + 16) + (16 + 1) * 2 * (10 + 20 + 50)  # K = 1: 2 features


class KillMidEpoch(Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 3:
            raise SystemExit(137)  # SIGKILL can't be caught; the process just stops here


SAME = ("dev_history", "dev_loss_history", "target_dev", "target_test", "weights", "weight_history", "passes",
        "optimizer_steps", "examples_seen")  # fmt: skip


@pytest.mark.trains
def test_a_conditional_run_killed_mid_epoch_resumes_to_the_same_record(tiny_cfg, tmp_path):
    import shutil

    overrides = ("method=conditional", "method.space.weights=[0,0.3,1]", "trainer.max_epochs=3", "ckpt_path=auto")
    whole = train(tiny_cfg(*overrides))
    shutil.rmtree(tmp_path / "run")
    with pytest.raises(SystemExit):
        train(tiny_cfg(*overrides), [KillMidEpoch()])
    assert not (tmp_path / "run" / "results.json").exists()
    resumed = train(tiny_cfg(*overrides))
    for key in SAME:
        assert resumed[key] == whole[key], key
    strip = lambda c: {k: v for k, v in c.items() if k != "seconds"}  # noqa: E731
    assert strip(resumed["conditional"]) == strip(whole["conditional"])


@pytest.mark.trains
def test_the_draws_do_not_touch_the_global_random_stream(tiny_cfg):
    """Dropout draws from torch's global generator: the λ draws must not shift it (the static equivalence above
    and a resume rely on it)."""
    dm, module, trainer = build(tiny_cfg("method=conditional", "trainer.max_epochs=1"))
    state = torch.get_rng_state()
    module.method.draw(100, torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.get_rng_state())


# --- the search -------------------------------------------------------------------------------------------
@pytest.mark.trains
@pytest.mark.parametrize(
    "strategy,fixed_trials", [("conditional", 1), pytest.param("conditional_halving", 3, marks=pytest.mark.slow)]
)
def test_search_conditional_runs_end_to_end_and_counts_the_scoring(strategy, fixed_trials, tiny_data, tmp_path):
    cfg = compose_config(
        [
            f"search={strategy}",
            "task.max_train_examples=160",
            "task.max_eval_examples=60",
            "task.batch_size=32",
            "task.download=false",
            "task.verify_checksums=false",
            "trainer.max_epochs=2",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "logger=none",
            f"paths.data_dir={tiny_data}",
            f"paths.cache_dir={tmp_path}/cache",
            "search.space.weights=[0,0.3,1]",
            f"search.dir={tmp_path}/search",
        ],
        output_dir=tmp_path / "search",
    )
    result = run_search(cfg)
    assert json.loads((tmp_path / "search" / "search.json").read_text())["strategy"] == "conditional"
    source = json.loads((tmp_path / "search" / "trials" / "source-conditional" / "results.json").read_text())
    assert source["method"] == "Conditional" and source["conditional"]["points"] == 3
    others = [t for t in result["trials"] if t["key"] != "source-conditional"]
    assert len(others) == fixed_trials
    source_row = next(t for t in result["trials"] if t["key"] == "source-conditional")
    assert source_row["runs"] == pytest.approx(1.0 + source["conditional"]["runs"])  # the scoring is counted
    assert result["total_runs"] == pytest.approx(sum(t["runs"] for t in result["trials"]))
    if strategy == "conditional":
        lam = source["conditional"]["chosen"]
        trained = {t: w for t, w in others[0]["weights"].items() if w > 0}
        assert trained == pytest.approx({"left": 1.0, **{t: w for t, w in lam.items() if w > 0}})  # λ*, fixed
    assert result["chosen"]["key"] in {t["key"] for t in result["trials"]}


def test_search_conditional_refuses_two_batchings(tmp_path):
    from src.schema import SearchConfig, SpaceConfig
    from src.search.registry import conditional_overrides
    from src.search.space import Space

    options = SearchConfig(strategy="conditional", space=SpaceConfig(batching=["mixed", "sampled"]))
    with pytest.raises(ConfigError, match="must hold one batching"):
        conditional_overrides(Space(options, ["right"], 0))


def test_an_encoders_hidden_states_are_conditioned_after_each_layer(tiny_glue):
    """FiLM reaches the transformer's hidden states (each layer's output), not only the pooled vector."""
    from src.models.encoder import multi_encoder

    tasks = [TaskSpec("rte", 2), TaskSpec("mrpc", 2)]
    model = multi_encoder(tasks, str(tiny_glue / "models" / "tiny-bert"), condition={"enabled": True, "hidden": 8})
    layers = model.trunk.encoder.get_submodule("encoder.layer")
    assert model.conditioner.site_names == [f"layer{i}" for i in range(len(layers))]
    model.eval()
    ids = torch.randint(5, model.trunk.encoder.config.vocab_size, (2, 7))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.zeros(2, dtype=torch.long)}
    before = model("rte", {**batch, CONDITION: torch.tensor([[1.0], [1.0]])})
    with torch.no_grad():
        model.conditioner.mlp[-1].weight.normal_()
    after_one = model("rte", {**batch, CONDITION: torch.tensor([[1.0], [1.0]])})
    after_zero = model("rte", {**batch, CONDITION: torch.tensor([[0.0], [0.0]])})
    assert not torch.allclose(before, after_one) and not torch.allclose(after_one, after_zero)


@pytest.mark.trains
def test_a_conditional_run_without_its_test_says_it_scored_nothing(tiny_cfg):
    results = train(tiny_cfg("method=conditional", "test=false", "trainer.max_epochs=1"))
    assert results["conditional"]["conditioned"] and not results["conditional"]["scored"]
    assert results["conditional"]["table"] == [] and results["target_test"] is None
