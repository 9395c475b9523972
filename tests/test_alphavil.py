"""αVIL: the exact α-gradient, the weight rules, equivalences, NaN safety and negative transfer."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from src.config import ConfigError, validate
from src.flat import assign, flatten
from src.methods.alphavil import (
    AlphaVIL,
    alpha_gradient,
    mix,
    project_simplex,
    relative_deltas,
    relative_to_target,
    update_weights,
)
from src.train import build, train
from tests.conftest import compose_config


def test_alpha_gradient_matches_autograd_through_the_mixture():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(11, 5), torch.randint(3, (11,))
    params = list(model.parameters())
    theta = flatten(params).double()
    deltas = 0.1 * torch.randn(4, theta.numel(), dtype=torch.double)
    alpha = torch.tensor([1.0, 0.5, 1.5, 0.2], dtype=torch.double)
    names = [n for n, _ in model.named_parameters()]
    model.double()

    def loss_at(a: torch.Tensor) -> torch.Tensor:
        flat, out, offset = theta + a @ deltas, {}, 0
        for n, p in zip(names, params):
            out[n] = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return nn.functional.cross_entropy(functional_call(model, out, (x.double(),)), y)

    a = alpha.clone().requires_grad_()
    (reference,) = torch.autograd.grad(loss_at(a), a)

    assign(list(model.parameters()), mix(theta, deltas, alpha))
    loss = nn.functional.cross_entropy(model(x.double()), y)
    g = torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss, list(model.parameters()))])
    torch.testing.assert_close(alpha_gradient(g, deltas), reference, rtol=1e-9, atol=1e-12)
    eps = 1e-6  # and a finite-difference check of one coordinate
    e0 = torch.zeros(4, dtype=torch.double)
    e0[2] = eps
    fd = (loss_at(alpha + e0) - loss_at(alpha - e0)) / (2 * eps)
    assert abs(fd.item() - reference[2].item()) < 1e-6


def test_assign_copies_instead_of_aliasing():
    layer = nn.Linear(2, 2)
    flat = torch.arange(6.0)
    assign(list(layer.parameters()), flat)
    flat += 100
    assert layer.weight.flatten().tolist() == [0.0, 1.0, 2.0, 3.0] and layer.bias.tolist() == [4.0, 5.0]


@pytest.mark.parametrize(
    "rule,expected",
    [
        ("additive", [1.0, 0.0, 1.3]),  # w + (α − 1), clamped at w_min=0: 0.5 + (0.2 − 1) < 0; target pinned at 1
        ("multiplicative", [1.0, 0.1, 0.6]),  # w · α
        ("replace", [1.0, 0.2, 0.3]),  # α
    ],
)
def test_weight_update_rules(rule, expected):
    w, alpha = torch.tensor([1.0, 0.5, 2.0]), torch.tensor([1.5, 0.2, 0.3])
    torch.testing.assert_close(update_weights(w, alpha, rule, w_min=0.0), torch.tensor(expected))
    assert update_weights(w, alpha, rule, w_min=0.25).min() >= 0.25


@pytest.mark.parametrize(
    "v,expected",
    [
        ([0.2, 0.3, 0.1], [1 / 3, 13 / 30, 7 / 30]),  # Σ = 0.6, all kept: each plus 0.4/3
        ([1.0, 0.47], [0.765, 0.235]),  # Σ = 1.47: each less 0.235
        ([3.0, -1.0, 0.5], [1.0, 0.0, 0.0]),  # the largest alone: τ = 2
        ([0.5, 0.5], [0.5, 0.5]),  # already on it
    ],
)
def test_project_simplex(v, expected):
    torch.testing.assert_close(project_simplex(torch.tensor(v)), torch.tensor(expected))


def test_relative_to_target_reads_simplex_alpha_as_weights():
    torch.testing.assert_close(relative_to_target(torch.tensor([0.5, 0.25, 0.25]), 2.0), torch.tensor([1.0, 0.5, 0.5]))
    torch.testing.assert_close(relative_to_target(torch.tensor([0.2, 0.8]), 2.0), torch.tensor([1.0, 2.0]))  # capped
    torch.testing.assert_close(relative_to_target(torch.tensor([0.0, 1.0]), 2.0), torch.tensor([0.0, 2.0]))


def test_simplex_alpha_sums_to_1_and_persists_as_the_weights(tiny_cfg):
    results = train(tiny_cfg("method=alphavil", "method.alpha_domain=simplex", "method.alpha_steps=3"))
    for alpha, weights in zip(results["alpha_history"], results["weight_history"]):
        assert sum(alpha.values()) == pytest.approx(1.0) and min(alpha.values()) >= 0
        assert weights["left"] == 1.0  # replace: α relative to the target's, floored at w_min
        assert weights["right"] == pytest.approx(max(min(alpha["right"] / alpha["left"], 2.0), 0.05), rel=1e-5)


def test_blocks_train_on_the_budget_of_the_run(tiny_cfg):
    """The target's block is its pass, each auxiliary's block its budget (here a quarter of it per epoch)."""
    results = train(tiny_cfg("method=alphavil", "task.budget=fraction", "task.budget_fraction=0.25"))
    sizes = results["train_examples"]
    assert results["budget"]["per_epoch"] == {"left": sizes["left"], "right": round(0.25 * sizes["right"])}
    assert results["examples_seen"] == {"left": 2 * sizes["left"], "right": 2 * round(0.25 * sizes["right"])}
    assert results["budget_multiple"] == {"left": 1.0, "right": 1.0}


@pytest.mark.parametrize(
    "rule", ["replace", *(pytest.param(r, marks=pytest.mark.slow) for r in ("additive", "multiplicative"))]
)
@pytest.mark.parametrize("init", ["ones", "weights"])
@pytest.mark.parametrize("bound", ["alpha_min", "alpha_max", "simplex_target_0", "simplex_target_1"])
def test_no_option_lets_the_target_weight_move_off_1(rule, init, bound, tiny_cfg, monkeypatch):
    """α driven to a bound every step (a huge α-gradient): the target keeps weight 1 and keeps training.

    On the simplex the extremes are all of α on the target (target_1) or none of it (target_0).
    """
    import src.methods.alphavil as alphavil

    gradient = {"alpha_min": [1e9, 1e9], "alpha_max": [-1e9, -1e9], "simplex_target_0": [1e9, -1e9]}
    gradient["simplex_target_1"] = [-1e9, 1e9]
    monkeypatch.setattr(alphavil, "alpha_gradient", lambda g, deltas: torch.tensor(gradient[bound]))
    options = [f"method.weight_update={rule}", f"method.alpha_init={init}", "method.alpha_steps=2"]
    extra = {
        "alpha_min": [],
        "alpha_max": ["method.alpha_min=0.5", "method.alpha_max=3"],
        "simplex_target_0": ["method.alpha_domain=simplex"],
        "simplex_target_1": ["method.alpha_domain=simplex"],
    }[bound]
    dm, module, trainer = build(tiny_cfg("method=alphavil", *options, *extra, "trainer.max_epochs=3"))
    trainer.fit(module, datamodule=dm)
    target_bound = {"alpha_min": 0.0, "alpha_max": 3.0, "simplex_target_0": 0.0, "simplex_target_1": 1.0}[bound]
    assert [r["alpha/left"] for r in module.method.history] == [target_bound] * 3
    assert [r["weight/left"] for r in module.method.history] == [1.0] * 3
    aux = module.method.history[-1]["weight/right"]  # the auxiliary's weight does move, as its rule says
    w_min = module.method.cfg.w_min
    if bound == "alpha_min":
        assert aux == pytest.approx(w_min)  # never below w_min: an auxiliary at its floor still trains a delta
    elif bound == "simplex_target_1":
        assert aux == pytest.approx(w_min)  # α_right = 0: its weight relative to the target's is 0, floored
    else:
        assert aux > 1.0 and w_min > 0
    assert module.examples_seen["left"] == 3 * len(dm.train_sets["left"])  # a full pass every epoch (target_rho=1)


def test_alpha_steps_zero_single_task_equals_plain_training(tiny_cfg):
    """One task, no α-steps: θ + 1·δ is exactly what training on the target alone gives."""
    common = ("task.auxiliaries=[]", "trainer.max_epochs=2")
    dm, plain, trainer = build(tiny_cfg("method=single_task", *common))
    trainer.fit(plain, datamodule=dm)
    dm, avil, trainer = build(tiny_cfg("method=alphavil", "method.alpha_steps=0", *common))
    trainer.fit(avil, datamodule=dm)
    for k, v in plain.model.state_dict().items():  # θ + (θ_t − θ) equals θ_t up to float rounding
        torch.testing.assert_close(v, avil.model.state_dict()[k], rtol=1e-5, atol=1e-6)
    assert avil.method.weights() == {"left": 1.0}


def test_epoch_logs_weights_alpha_and_dev_losses(tiny_cfg, tmp_path):
    results = train(tiny_cfg("method=alphavil", "method.alpha_steps=3"))
    assert len(results["alpha_history"]) == 2 and set(results["alpha_history"][0]) == {"left", "right"}
    record = results["method_history"][0]
    assert record["alpha_steps_taken"] == 3 and record["skipped_alpha_steps"] == 0
    assert record["dev_loss_before"] > 0 and record["dev_loss_after"] > 0
    # the replace rule: w = α after an epoch (as the additive rule from w=1 would give); the target's stays 1
    assert results["weight_history"][0]["left"] == 1.0
    assert results["weight_history"][0]["right"] == pytest.approx(max(results["alpha_history"][0]["right"], 0.05))


def test_non_finite_alpha_step_is_skipped_and_counted(tiny_cfg, monkeypatch):
    calls = {"n": 0}
    original = AlphaVIL._dev_loss

    def nan_on_second(self, module, batch, grad):
        calls["n"] += 1
        loss = original(self, module, batch, grad)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(AlphaVIL, "_dev_loss", nan_on_second)
    dm, module, trainer = build(tiny_cfg("method=alphavil", "method.alpha_steps=3", "trainer.max_epochs=1"))
    trainer.fit(module, datamodule=dm)
    record = module.method.history[0]
    assert record["method/skipped_alpha_steps"] == 1 and record["method/alpha_steps_taken"] == 2
    assert module.method.skipped_alpha_steps == 1
    assert all(torch.isfinite(p).all() for p in module.model.parameters())


@pytest.mark.parametrize(
    "override,message",
    [
        ("method.alpha_steps=-1", "method.alpha_steps=-1"),
        ("method.alpha_lr=0", "method.alpha_lr=0"),
        ("method.alpha_init=zeros", "method.alpha_init='zeros'"),
        ("method.weight_update=max", "method.weight_update='max'"),
        ("method.delta_dtype=float16", "method.delta_dtype='float16'"),
        ("method.alpha_min=3", "method.alpha_min=3"),
        ("method.alpha_domain=sphere", "method.alpha_domain='sphere'"),
    ],
)
def test_invalid_options_are_rejected(override, message, tmp_path):
    cfg = compose_config(["method=alphavil", override], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        validate(cfg)


def test_trainer_limits_that_cut_epochs_are_refused(tiny_cfg):
    dm, module, trainer = build(tiny_cfg("method=alphavil", "trainer.limit_train_batches=2"))
    with pytest.raises(ValueError, match="task.max_train_examples"):
        trainer.fit(module, datamodule=dm)


def test_bfloat16_deltas_are_stored_in_bf16_and_give_nearly_the_float32_alpha(tiny_cfg, monkeypatch):
    dtypes = set()
    original = AlphaVIL._alpha_step

    def spy(self, module, step):
        dtypes.add(self.deltas.dtype)
        return original(self, module, step)

    monkeypatch.setattr(AlphaVIL, "_alpha_step", spy)
    exact = train(tiny_cfg("method=alphavil", "trainer.max_epochs=1"))
    assert dtypes == {torch.float32}  # auto: the parameters' dtype
    dtypes.clear()
    rounded = train(tiny_cfg("method=alphavil", "method.delta_dtype=bfloat16", "trainer.max_epochs=1"))
    assert dtypes == {torch.bfloat16}
    for t in ("left", "right"):  # bf16 keeps 8 bits of mantissa: α moves the same way, to within rounding
        a, b = exact["alpha_history"][0][t], rounded["alpha_history"][0][t]
        assert a != 1.0 and b == pytest.approx(a, abs=0.02), (a, b)


def test_negative_transfer_random_label_task_gets_less_weight(tiny_cfg):
    """An auxiliary with random labels ends with a lower weight than the real auxiliary."""
    results = train(
        tiny_cfg(
            "task=multimnist_noise",
            "method=alphavil",
            "task.max_train_examples=null",
            "trainer.max_epochs=4",
            "method.alpha_steps=5",
            "task.budget=fraction",  # half of each auxiliary per epoch
        )
    )
    assert results["weights"]["noise"] < results["weights"]["right"], results["weight_history"]


def test_deltas_in_the_targets_basis_count_the_shared_drift_once():
    """δ_t = c + s_t: in the target's basis the mixture at α = 1 is θ + c + s_target + Σ_aux (s_t − s_target), the
    shared drift c once; in each delta's own basis it is θ + (K + 1)·c + Σ s_t."""
    c, s = torch.tensor([1.0, 1.0]), torch.tensor([[0.0, 0.1], [0.2, 0.0], [0.0, -0.3]])
    deltas = c + s
    relative = relative_deltas(deltas)
    assert torch.equal(relative[0], deltas[0]) and torch.allclose(relative[1:], s[1:] - s[0])
    ones, theta = torch.ones(3), torch.zeros(2)
    assert torch.allclose(mix(theta, relative, ones), c + s[0] + (s[1:] - s[0]).sum(0))
    assert torch.allclose(mix(theta, deltas, ones), 3 * c + s.sum(0))


def test_the_target_basis_is_applied_once_the_last_block_ends(tiny_cfg, monkeypatch):
    seen = []
    import src.methods.alphavil as alphavil

    real = alphavil.relative_deltas

    def recording(deltas):
        seen.append(deltas.clone())
        return real(deltas)

    monkeypatch.setattr(alphavil, "relative_deltas", recording)
    train(tiny_cfg("method=alphavil", "method.delta_basis=target", "trainer.max_epochs=1"))
    assert len(seen) == 1 and bool(seen[0].abs().sum(1).gt(0).all())  # every task's delta was in, once an epoch
