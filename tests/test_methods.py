"""The method interface: state as buffers that follow the model, the gradient seam, cut epochs, PCGrad."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from torchjd.aggregation import PCGradWeighting

from src.data.schedule import DEV, step_loader
from src.methods.base import WeightingMethod
from src.train import build, train
from tests.conftest import METHOD_CASES, METHODS, ROOT

WHOLE_EPOCHS = {"alphavil", "forkmerge"}  # methods that refuse cut epochs (their schedule ends with its own step)


def method_tensors(method: WeightingMethod) -> dict[str, torch.Tensor]:
    """Every tensor a method holds: buffers, parameters, and plain attributes (per-epoch θ, deltas, ...)."""
    found = {f"buffer {n}": b for n, b in method.named_buffers()}
    found.update({f"parameter {n}": p for n, p in method.named_parameters()})
    for module in method.modules():
        for name, value in vars(module).items():
            if isinstance(value, torch.Tensor):
                found[f"attribute {name}"] = value
    return found


class ScanMethodState(Callback):
    """After every training step, record the dtype and device of every floating tensor the method holds."""

    def __init__(self):
        self.seen: dict[str, set[tuple[torch.dtype, torch.device]]] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        for p in module.model.parameters():  # the model's own, during training (Lightning moves it back after fit)
            self.seen.setdefault("model parameters", set()).add((p.dtype, p.device))
        for name, t in method_tensors(module.method).items():
            if t.is_floating_point():
                self.seen.setdefault(name, set()).add((t.dtype, t.device))


def fit_and_scan(tiny_cfg, method: str, *overrides: str):
    """One epoch of ``method``, recording every floating tensor the method holds after each step."""
    dm, module, trainer = build(tiny_cfg(f"method={method}", *overrides, "trainer.max_epochs=1"))
    scan = ScanMethodState()
    trainer.callbacks.append(scan)
    trainer.fit(module, datamodule=dm)
    assert scan.seen, "no method state was scanned"
    assert len(module.method.history) == 1
    return module, scan.seen


@pytest.mark.parametrize("method", METHOD_CASES)
def test_state_follows_the_model_to_float64(method, tiny_cfg):
    """With the model in float64 (precision=64-true) every tensor the method holds or makes is float64."""
    module, seen = fit_and_scan(tiny_cfg, method, "trainer.precision=64-true")
    assert all(p.dtype == torch.float64 for p in module.model.parameters())
    behind = {name: kinds for name, kinds in seen.items() if kinds != {(torch.float64, torch.device("cpu"))}}
    assert not behind, f"tensors left in another dtype or device: {behind}"
    assert module.method.w.dtype == torch.float64


@pytest.mark.parametrize("method", METHOD_CASES)
def test_bf16_mixed_precision_trains_every_method(method, tiny_cfg):
    """bf16 autocast (what trainer=gpu uses), here on the CPU: the steps compute in bfloat16, the parameters
    stay float32 and move."""
    dm, module, trainer = build(tiny_cfg(f"method={method}", "trainer.precision=bf16-mixed", "trainer.max_epochs=1"))
    computed = set()
    module.model.trunk.register_forward_hook(
        lambda trunk, args, out: computed.add(out.dtype) if trunk.training else None
    )
    before = [p.detach().clone() for p in module.model.trunk.parameters()]
    trainer.fit(module, datamodule=dm)
    after = list(module.model.trunk.parameters())
    assert torch.bfloat16 in computed, computed
    assert all(p.dtype == torch.float32 for p in after)
    assert any(not torch.equal(b, a) for b, a in zip(before, after))
    assert all(math.isfinite(w) for w in module.method.weights().values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (trainer=gpu, bf16-mixed)")
@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_an_epoch_on_a_gpu(method, tiny_cfg):
    module, seen = fit_and_scan(tiny_cfg, method, "trainer=gpu")
    assert {d.type for _, d in seen["model parameters"]} == {"cuda"}
    behind = {name: kinds for name, kinds in seen.items() if any(d.type != "cuda" for _, d in kinds)}
    assert not behind, f"tensors left off the GPU: {behind}"


@pytest.mark.parametrize("method", METHOD_CASES)
def test_state_is_in_the_module_state_dict(method, tiny_cfg):
    """Lightning checkpoints the method with the model: weights and history are in the state_dict."""
    dm, module, trainer = build(tiny_cfg(f"method={method}", "trainer.max_epochs=1"))
    trainer.fit(module, datamodule=dm)
    state = module.state_dict()
    assert torch.equal(state["method.w"], module.method.w)
    assert state["method._extra_state"]["history"] == module.method.history
    fresh_dm, fresh, _ = build(tiny_cfg(f"method={method}", "trainer.max_epochs=1"))
    fresh.load_state_dict(state)
    assert fresh.method.history == module.method.history and torch.equal(fresh.method.w, module.method.w)


@pytest.mark.parametrize("method", METHOD_CASES)
def test_cut_epochs_keep_their_record_or_are_refused(method, tiny_cfg):
    # OL-AUX moves its weights every `horizon` steps: here, every step, so the cut epoch moves them
    extra = ["method.horizon=1"] if method == "ol_aux" else []
    cfg = tiny_cfg(f"method={method}", "trainer.limit_train_batches=0.5", *extra)
    if method in WHOLE_EPOCHS:
        with pytest.raises(ValueError, match="needs whole epochs"):
            train(cfg)
        return
    results = train(cfg)
    assert len(results["weight_history"]) == 2 and len(results["epoch_seconds"]) == 2
    # 5 planned steps an epoch (160 target examples, batch 32), cut to int(0.5 · 5) = 2 executed ones
    assert results["optimizer_steps"] == 2 * 2
    target_steps = 2 if method == "post_train" else 4  # post-training's first epoch leaves the target out
    assert results["examples_seen"]["left"] == target_steps * 32
    if method not in ("single_task", "uniform", "static"):  # weights learned from what the cut epoch saw
        assert results["weight_history"][0] != {t: 1.0 for t in results["tasks"]}


def test_an_epoch_that_closes_without_its_record_is_an_error(tiny_cfg, monkeypatch):
    monkeypatch.setattr(WeightingMethod, "training_step", lambda self, module, step, last: self.step(module, step))
    dm, module, trainer = build(tiny_cfg("method=uniform", "trainer.max_epochs=1"))
    with pytest.raises(RuntimeError, match="closed without its record"):
        trainer.fit(module, datamodule=dm)


# --- the gradient seam ------------------------------------------------------------------------------
def first_step(dm, module):
    """The first planned step of epoch 0, loaded."""
    dm.setup("fit")
    steps = dm.plan(0)
    return next(iter(step_loader(steps[:1], {**dm.train_sets, DEV: dm.dev_set})))


def test_task_gradients_match_each_loss_alone(tiny_cfg):
    dm, module, _ = build(tiny_cfg("method=uniform", "model.net.dropout=0"))
    step = first_step(dm, module)
    grads = module.task_gradients({t: module.loss(t, step.data[t]).mean() for t in ("left", "right")})
    shared = list(module.shared_parameters().values())
    for i, task in enumerate(("left", "right")):
        module.zero_grad()
        module.loss(task, step.data[task]).mean().backward()
        expected = torch.cat([p.grad.reshape(-1) for p in shared])
        torch.testing.assert_close(grads.shared[i], expected)
        head = list(module.task_parameters(task).values())
        torch.testing.assert_close(grads.heads[task], torch.cat([p.grad.reshape(-1) for p in head]))
    assert set(module.shared_parameters()) | {n for t in ("left", "right") for n in module.task_parameters(t)} == {
        n for n, _ in module.model.named_parameters()
    }


def pcgrad_by_hand(g: torch.Tensor) -> torch.Tensor:
    """PCGrad for two tasks (order does not matter): project each gradient off the other where they conflict."""
    out = []
    for i, j in ((0, 1), (1, 0)):
        gi = g[i].clone()
        if gi @ g[j] < 0:
            gi -= (gi @ g[j]) / (g[j] @ g[j]) * g[j]
        out.append(gi)
    return out[0] + out[1]


def test_pcgrad_weighting_on_a_hand_computed_example():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # conflicting: <g1, g2> = -1
    coefficients = PCGradWeighting()(g @ g.T)
    # g1' = g1 + ½g2 = (½, ½), g2' = g2 + g1 = (0, 1): g1 counts 1 + 1, g2 counts 1 + ½
    torch.testing.assert_close(coefficients, torch.tensor([2.0, 1.5]))
    torch.testing.assert_close(coefficients @ g, torch.tensor([0.5, 1.5]))
    agreeing = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(PCGradWeighting()(agreeing @ agreeing.T), torch.ones(2))


def test_upgrad_coefficients_on_a_hand_computed_example():
    """Unit gradients at 120°: each is projected off the other, g1 + ½g2 and g2 + ½g1, and averaged."""
    from types import SimpleNamespace

    from src.methods.upgrad import UPGrad

    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 3**0.5 / 2])
    grads = SimpleNamespace(shared=torch.stack([g1, g2]))
    module = SimpleNamespace(broadcast=lambda x: x)
    torch.testing.assert_close(
        UPGrad().coefficients(module, grads, None), torch.tensor([0.75, 0.75]), atol=1e-4, rtol=0
    )
    agreeing = SimpleNamespace(shared=torch.tensor([[1.0, 0.0], [1.0, 1.0]]))  # nothing to project: the mean
    torch.testing.assert_close(UPGrad().coefficients(module, agreeing, None), torch.full((2,), 0.5), atol=1e-4, rtol=0)


def test_pcgrad_step_applies_the_projected_gradient(tiny_cfg):
    """One SGD step (lr 1) moves the trunk by −PCGrad(g_left, g_right) and each head by −its own gradient."""
    overrides = ("method=pcgrad", "model.net.dropout=0", "model.optimizer._target_=torch.optim.SGD")
    dm, module, _ = build(tiny_cfg(*overrides, "model.optimizer.lr=1.0"))
    step = first_step(dm, module)
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    grads = module.task_gradients({t: module.loss(t, step.data[t]).mean() for t in ("left", "right")})
    assert grads.shared[0] @ grads.shared[1] != 0
    expected_trunk = torch.cat([p.reshape(-1) for p in module.shared_parameters().values()]).detach()
    expected_trunk -= pcgrad_by_hand(grads.shared)

    # the same seed builds the same initial model; one fit step runs that same first planned step
    dm2, module2, trainer2 = build(
        tiny_cfg(*overrides, "model.optimizer.lr=1.0", "trainer.limit_train_batches=1", "trainer.max_epochs=1")
    )
    assert all(torch.equal(before[n], p) for n, p in module2.model.named_parameters())
    trainer2.fit(module2, datamodule=dm2)
    trunk = torch.cat([p.reshape(-1) for p in module2.shared_parameters().values()]).detach()
    torch.testing.assert_close(trunk, expected_trunk, rtol=1e-5, atol=1e-6)
    for task in ("left", "right"):
        head = torch.cat([p.reshape(-1) for p in module2.task_parameters(task).values()]).detach()
        start = torch.cat([before[n].reshape(-1) for n in module2.task_parameters(task)])
        torch.testing.assert_close(head, start - grads.heads[task], rtol=1e-5, atol=1e-6)


# --- configs from one place -------------------------------------------------------------------------
@pytest.mark.slow
def test_each_method_imported_first_still_composes(tmp_path):
    """No import cycle: importing a method's module before anything else of ``src`` leaves its schema registered.
    One fresh interpreter for every method: before each, every ``src`` module is forgotten (torch and Hydra stay
    loaded, which an import cycle within ``src`` does not depend on)."""
    code = f"""
import json, sys, importlib
from hydra import compose, initialize_config_dir
out = {{}}
for method in {list(METHODS)!r}:
    for name in [m for m in sys.modules if m == "src" or m.startswith("src.")]:
        del sys.modules[name]
    try:
        importlib.import_module("src.methods." + method)
        importlib.import_module("src.config")
        with initialize_config_dir(config_dir={str(ROOT / "conf")!r}, version_base="1.3"):
            out[method] = compose("config", overrides=["method=" + method]).method._target_
    except Exception as e:
        out[method] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    targets = json.loads(proc.stdout.strip().splitlines()[-1])
    wrong = {m: t for m, t in targets.items() if not t.startswith(f"src.methods.{m}.")}
    assert not wrong and set(targets) == set(METHODS), wrong


# --- fixed weights, per-task sizes, mixing ----------------------------------------------------------
def test_static_weights_scale_each_task_loss(tiny_cfg):
    dm, module, trainer = build(tiny_cfg("method=static", "method.weights={right: 0.3}", "trainer.max_epochs=1"))
    assert module.method.weights() == {"left": 1.0, "right": pytest.approx(0.3)}
    losses = {"left": torch.tensor(2.0), "right": torch.tensor(10.0)}
    assert module.method.weighted_sum(losses).item() == pytest.approx(2.0 + 0.3 * 10.0)
    trainer.fit(module, datamodule=dm)
    assert module.method.history[0]["weight/right"] == pytest.approx(0.3)


def test_static_aux_weight_sets_every_unlisted_auxiliary(tiny_cfg):
    _, module, _ = build(
        tiny_cfg("task=multimnist_noise", "method=static", "method.aux_weight=0.1", "method.weights={noise: 2}")
    )
    assert module.method.weights() == {"left": 1.0, "right": pytest.approx(0.1), "noise": 2.0}


def test_static_with_every_weight_1_is_uniform(tiny_cfg):
    dm, static, trainer = build(tiny_cfg("method=static", "method.weights={right: 1.0}", "trainer.max_epochs=1"))
    trainer.fit(static, datamodule=dm)
    dm, uniform, trainer = build(tiny_cfg("method=uniform", "trainer.max_epochs=1"))
    trainer.fit(uniform, datamodule=dm)
    for k, v in uniform.model.state_dict().items():
        assert torch.equal(v, static.model.state_dict()[k]), k


@pytest.mark.parametrize(
    "weights,message",
    [("{up: 0.5}", "method.weights names 'up'"), ("{left: 0}", "method.weights.left=0: the target's own weight")],
)
def test_static_rejects_weights_it_cannot_use(weights, message, tiny_cfg):
    with pytest.raises(ValueError, match=message):
        build(tiny_cfg("method=static", f"method.weights={weights}"))


def test_static_rejects_a_negative_weight_at_validation(tmp_path):
    from src.config import ConfigError, validate
    from tests.conftest import compose_config

    with pytest.raises(ConfigError, match=r"method.weights.right=-1.0: must be a number in \[0, 10000\]"):
        validate(compose_config(["method=static", "method.weights={right: -1}"], output_dir=tmp_path))


def test_per_task_sizes_and_examples_seen(tiny_cfg):
    results = train(tiny_cfg("method=uniform", "task.max_train_examples=null", "task.train_examples={left: 50}"))
    assert results["train_examples"] == {"left": 50, "right": 270}  # 300 images less the 30 of dev
    # the equal budget: two epochs of one pass over the target, the auxiliary drawn as often
    assert results["examples_seen"] == {"left": 100, "right": 100}


@pytest.mark.parametrize(
    "budget,expected",
    [("equal", 50), ("proportional", 270), ("temperature", 116), ("fraction", 135), ("counts", 77)],
)
def test_budget_rules_set_the_auxiliary_examples_per_epoch(budget, expected, tiny_cfg):
    """50 target and 270 auxiliary examples: equal 50; proportional 270; temperature 2: 50·√(270/50) = 116;
    fraction 0.5: 135; counts: as given."""
    overrides = ("task.max_train_examples=null", "task.train_examples={left: 50}", f"task.budget={budget}")
    overrides += ("task.budget_examples={right: 77}",) if budget == "counts" else ()  # read by counts only
    results = train(tiny_cfg("method=uniform", *overrides, "trainer.max_epochs=1"))
    assert results["examples_seen"] == {"left": 50, "right": expected}
    steps = results["examples_seen"]["left"] / 32  # target batches per epoch (batch_size 32)
    assert math.ceil(steps) == 2


def test_mixed_steps_spread_an_auxiliary_like_the_target_batches():
    from src.data.schedule import EpochData, epoch_budget
    from src.data.tasks import TaskSpec
    from src.methods.uniform import Uniform

    method = Uniform()
    method.setup([TaskSpec("t", 2), TaskSpec("a", 2), TaskSpec("b", 2)], "t")
    sizes = {"t": 100, "a": 1000, "b": 10, DEV: 20}
    data = EpochData(sizes, 32, epoch_budget(sizes, "t", "proportional"))
    steps = method.plan_epoch(data, torch.Generator().manual_seed(0))
    assert [len(s.indices["t"]) for s in steps] == [32, 32, 32, 4]
    assert [len(s.indices["a"]) for s in steps] == [320, 320, 320, 40]  # ten times the target's batches
    assert sum(len(s.indices.get("b", ())) for s in steps) == 10 and all(len(s.indices.get("b", [0])) for s in steps)
    assert len(torch.cat([s.indices["a"] for s in steps]).unique()) == 1000  # one pass, without replacement


def test_the_whole_epochs_list_matches_the_classes():
    from tests.conftest import method_class

    declared = {m for m in METHODS if method_class(m).whole_epochs}
    assert declared == WHOLE_EPOCHS


# --- a learned weight cannot silently leave its range ------------------------------------------------------
def _with_weights(method: str, weights: list[float]):
    from hydra.utils import instantiate

    from src.data.tasks import TaskSpec
    from tests.conftest import compose_config

    m = instantiate(compose_config([f"method={method}"]).method)
    m.setup([TaskSpec(t, 10) for t in ("left", "right", "noise")[: len(weights)]], "left")
    m.w = torch.tensor(weights)
    return m


@pytest.mark.parametrize(
    "method,weights,phrase",
    [
        ("gradnorm", [0.0, 2.0], "the target's weight is 0: its loss no longer trains the model; lower method.lr"),
        ("auto_lambda", [-0.5, 1.0], "the target's weight is -0.5: its loss is ascended; lower method.lr"),
        ("hydalearn", [1.0, -0.1], "negative weights (right=-0.1)"),
        ("ol_aux", [1.0, 3e4], "weights beyond 10000 (right=3e+04)"),
        ("alphavil", [1.0, 0.05, 0.05], "every auxiliary's weight is at its floor method.w_min=0.05"),
        ("alphavil", [1.0, 2.0, 2.0], "every auxiliary's weight is at its ceiling method.alpha_max=2.0"),
        ("gradnorm", [1.999, 0.001], "every auxiliary's weight is at its floor method.min_weight=0.001"),
    ],
)
def test_weights_out_of_their_range_are_named_with_the_option_to_lower(method, weights, phrase):
    assert any(phrase in p for p in _with_weights(method, weights).check_weights())


def test_weights_in_their_range_raise_nothing_and_signed_rules_may_go_negative():
    assert _with_weights("gradnorm", [0.7, 1.3]).check_weights() == []
    assert _with_weights("ol_aux", [1.0, -0.4]).check_weights() == []  # OL-AUX's weights are not clipped
    assert _with_weights("forkmerge", [0.0, 1.0]).check_weights() == []  # merge coefficients may drop a branch
    assert _with_weights("post_train", [0.0, 1.0]).check_weights() == []  # its auxiliaries' phase, by design


def test_weights_that_are_not_finite_stop_the_run_naming_the_option():
    with pytest.raises(FloatingPointError, match=r"right=nan.*lower method.alpha_lr"):
        _with_weights("alphavil", [1.0, float("nan")]).check_weights()


def test_a_divergent_step_size_is_warned_at_the_first_epoch(tiny_cfg):
    """αVIL with α-steps far too large: every α at its ceiling after epoch 0, said in the log and results.json."""
    from src.train import train

    results = train(tiny_cfg("method=alphavil", "method.alpha_lr=1e30", "trainer.max_epochs=1"))
    assert any("epoch 0: method AlphaVIL: every auxiliary's weight is at its ceiling" in w for w in results["warnings"])


def test_what_the_methods_call_on_the_module_is_the_seam_and_the_module_implements_it():
    """Every ``module.<name>`` a method uses is declared by :class:`src.seam.Seam`; the module has each member."""
    import re

    from src.module import MultiTaskModule
    from src.seam import Seam

    declared = {n for n in vars(Seam) if not n.startswith("_")} | set(Seam.__annotations__)
    used = set()
    for path in (ROOT / "src" / "methods").glob("*.py"):
        used |= set(re.findall(r"\bmodule\.([a-z_]\w*)", path.read_text()))
    assert used <= declared, f"used by a method but not in src/seam.py: {sorted(used - declared)}"
    instance_attributes = {"model", "specs", "seed", "warnings"}  # set in MultiTaskModule.__init__
    missing = [n for n in declared if not hasattr(MultiTaskModule, n) and n not in instance_attributes]
    assert not missing, f"in src/seam.py but not on the module: {missing}"
