"""The baselines' rules on small tensors, against hand-computed values; and what each run records.

Every method also runs in the suites parametrized over ``METHODS`` (test_methods, test_run's exact resume,
test_glue's GLUE runs, the float64 and bf16 checks), so these tests keep to each method's own rule.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from src.data.schedule import DEV, EpochData
from src.data.tasks import TaskSpec
from src.methods.auto_lambda import AutoLambda, adam_step
from src.methods.forkmerge import greedy_merge
from src.methods.gcs import gcs_coefficients
from src.methods.hydalearn import gain_weights
from src.methods.ol_aux import OLAux, similarities
from src.methods.post_train import PostTrain
from src.methods.uncertainty import uncertainty_loss
from src.train import build, train

TASKS = [TaskSpec("left", 10), TaskSpec("right", 10)]


def test_uncertainty_loss_and_its_gradient_by_hand():
    s = torch.tensor([0.0, math.log(2.0)], requires_grad=True)
    loss = uncertainty_loss(torch.tensor([2.0, 1.0]), s)
    assert float(loss) == pytest.approx(2 / 2 + 0 + 1 / 4 + math.log(2) / 2)
    loss.backward()  # d/ds (L / (2e^s) + s / 2) = −L / (2e^s) + 1/2
    assert s.grad.tolist() == pytest.approx([-1 + 0.5, -1 / 4 + 0.5])


def test_uncertainty_log_variances_train_with_the_model_without_weight_decay(tiny_cfg):
    results = train(tiny_cfg("method=uncertainty", "trainer.max_epochs=2", "model.optimizer.weight_decay=0.1"))
    _, module, _ = build(tiny_cfg("method=uncertainty"))
    groups = module.configure_optimizers().param_groups
    assert groups[1]["params"] == [module.method.log_variance] and groups[1]["weight_decay"] == 0.0
    first = results["weight_history"][0]["left"]
    assert first != pytest.approx(1 / (2 * math.exp(-0.5)))  # the weights moved off their start
    assert set(results["log_variance_history"][-1]) == {"left", "right"}


def test_gcs_gates_auxiliaries_by_their_cosine_with_the_target():
    shared = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.1], [0.0, 1.0]])
    assert gcs_coefficients(shared, "unweighted").tolist() == [1.0, 1.0, 0.0, 0.0]  # cos 0 does not count
    assert gcs_coefficients(shared, "weighted").tolist() == pytest.approx([1.0, 1 / math.sqrt(2), 0.0, 0.0])
    assert (gcs_coefficients(shared, "unweighted") @ shared).tolist() == [2.0, 1.0]


def test_ol_aux_similarities_and_weight_updates_every_horizon_steps():
    shared = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, 1.0]])
    assert similarities(shared, "cosine", lr=0.5).tolist() == pytest.approx([0.0, 1.0, 0.0, -1 / math.sqrt(2)])
    assert similarities(shared, "dot", lr=0.5).tolist() == pytest.approx([0.0, 1.0, 0.0, -0.5])
    method = OLAux(beta=0.5, horizon=2)
    method.setup(TASKS, "left")
    index = torch.tensor([0, 1])
    method.observe(index, torch.tensor([0.0, 0.4]))
    assert method.w.tolist() == [1.0, 1.0]  # not before the horizon
    method.observe(index, torch.tensor([0.0, -0.2]))
    assert method.w.tolist() == pytest.approx([1.0, 1.0 + 0.5 * (0.4 - 0.2)]) and method.accumulated.tolist() == [0, 0]


def test_hydalearn_weights_from_gains():
    assert gain_weights(torch.tensor([2.0, 1.0, -1.0, 30.0]), max_weight=10).tolist() == [1.0, 0.5, 0.0, 10.0]
    assert gain_weights(torch.tensor([0.0, 1.0]), max_weight=10).tolist() == [
        1.0,
        0.0,
    ]  # the target's step did not help
    assert gain_weights(torch.tensor([-1.0, 1.0]), max_weight=10).tolist() == [1.0, 0.0]


def test_hydalearn_gains_are_the_target_loss_drops_of_trial_steps(tiny_cfg):
    """gain_k = L(θ) − L(θ − η g_k), checked against moving the parameters by hand."""
    dm, module, _ = build(tiny_cfg("method=hydalearn", "task.batch_size=16"))
    dm.setup()
    batch = {t: dm.train_sets[t].batch(torch.arange(16)) for t in ("left", "right")}
    grads = module.task_gradients(module.task_losses(batch))
    module.method.cfg.lookahead_lr = 0.05
    gains = module.method.gains(module, grads, batch["left"])
    module.model.eval()
    shared = list(module.shared_parameters().values())
    with torch.no_grad():
        before = float(module.loss("left", batch["left"]).mean())
        offset = 0
        for p in shared:
            p -= 0.05 * grads.shared[1][offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        after_right = float(module.loss("left", batch["left"]).mean())
    assert float(gains[1]) == pytest.approx(before - after_right, abs=1e-5)


def test_auto_lambda_adam_matches_torch():
    value, grads = torch.tensor([0.1, 0.1]), [torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.5])]
    reference = torch.nn.Parameter(value.clone())
    opt = torch.optim.Adam([reference], lr=1e-2)
    m, v = torch.zeros(2), torch.zeros(2)
    for step, g in enumerate(grads, start=1):
        value = adam_step(value, g, m, v, step, 1e-2, (0.9, 0.999), 1e-8)
        reference.grad = g.clone()
        opt.step()
    assert torch.allclose(value, reference.detach(), atol=1e-7)


def test_auto_lambda_gradient_matches_finite_differences(tiny_cfg):
    """∂L_dev(θ − η(Σλ∇L + wd·θ))/∂λ, exact, against central differences in float64."""
    dm, module, _ = build(tiny_cfg("method=auto_lambda", "task.batch_size=16", "model.net.dropout=0"))
    module.double()
    method: AutoLambda = module.method
    method.w = torch.tensor([0.3, 0.7], dtype=torch.float64)
    dm.setup()

    def as_double(b):
        return {k: v.double() if v.is_floating_point() else v for k, v in b.items()}

    batch = {t: as_double(dm.train_sets[t].batch(torch.arange(16))) for t in ("left", "right")}
    dev = as_double(dm.dev_set.batch(torch.arange(16)))
    lr, wd = 0.1, 0.01
    grads = module.task_gradients(module.task_losses(batch))
    exact = method.lambda_gradient(module, grads, dev, lr, wd)

    shared = list(module.shared_parameters().values())
    head = list(module.task_parameters("left").values())

    def dev_loss_at(lam):
        flat = torch.cat([p.detach().reshape(-1) for p in shared])
        flat_head = torch.cat([p.detach().reshape(-1) for p in head])
        moves = [
            (shared, -lr * (lam @ grads.shared + wd * flat)),
            (head, -lr * (lam[0] * grads.heads["left"] + wd * flat_head)),
        ]
        with torch.no_grad(), module.displaced(moves):
            return float(module.loss("left", dev).mean())

    h = 1e-5
    for k in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[k] = h
        numeric = (dev_loss_at(method.w + e) - dev_loss_at(method.w - e)) / (2 * h)
        assert float(exact[k]) == pytest.approx(numeric, rel=1e-4, abs=1e-9), k


def test_forkmerge_greedy_merge_by_hand():
    target = torch.tensor([0.2, 0.5, 0.3])

    def score(lam):
        return float(((torch.tensor(lam) - target) ** 2).sum())

    # ranked by own loss: branch 1, 2, 0. Branch 2 tries a·1 and keeps 0.5 (score 0.0689 beats 0.38 and 0.08);
    # branch 0 tries a·(1.5 / 2) and keeps 0.375; normalised by 1.875
    lam = greedy_merge([0.5, 0.3, 0.4], score, [0.0, 0.5, 1.0])
    assert lam == pytest.approx([0.375 / 1.875, 1 / 1.875, 0.5 / 1.875])


def test_forkmerge_merges_a_convex_combination_each_epoch(tiny_cfg):
    results = train(tiny_cfg("method=forkmerge", "trainer.max_epochs=2", "method.merge_examples=40"))
    for record in results["merge_history"]:
        assert set(record) == {"left", "right"} and sum(record.values()) == pytest.approx(1.0)
    assert results["examples_seen"]["left"] == 2 * 2 * 160  # the target in both branches, two epochs


def test_post_train_plans_auxiliaries_then_the_target():
    method = PostTrain(aux_epochs=1)
    method.setup(TASKS, "left")
    data = EpochData({"left": 100, "right": 300, DEV: 20}, 32, {"left": 100, "right": 100}, epoch=0)
    g = torch.Generator().manual_seed(0)
    first = method.plan_epoch(data, g)
    assert all("left" not in s.indices for s in first) and sum(len(s.indices["right"]) for s in first) == 100
    assert method.phase_weights(0).tolist() == [0.0, 1.0]
    second = method.plan_epoch(replace(data, epoch=1), g)
    assert all(set(s.indices) == {"left"} for s in second) and second[0].block == "finetune"
    assert method.phase_weights(1).tolist() == [1.0, 0.0] and method.w.tolist() == [1.0, 1.0]  # planning wrote none


def test_post_train_resumed_with_more_epochs_keeps_the_phases_it_started_with(tiny_cfg):
    """Its auxiliary phase is half the epochs of the run as started: a resume asking for more epochs goes on
    fine-tuning the target, never back to the auxiliaries."""
    first = train(tiny_cfg("method=post_train", "trainer.max_epochs=2", "ckpt_path=auto"))
    assert [r["left"] for r in first["weight_history"]] == [0.0, 1.0]
    resumed = train(tiny_cfg("method=post_train", "trainer.max_epochs=6", "ckpt_path=auto"))
    assert [r["left"] for r in resumed["weight_history"]] == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert resumed["examples_seen"]["right"] == first["examples_seen"]["right"]


def test_post_train_run_switches_at_half_the_epochs_with_a_fresh_optimizer(tiny_cfg):
    results = train(tiny_cfg("method=post_train", "trainer.max_epochs=4"))
    assert [r["left"] for r in results["weight_history"]] == [0.0, 0.0, 1.0, 1.0]
    assert results["examples_seen"]["left"] == 2 * 160 and results["examples_seen"]["right"] == 2 * 160
    assert results["best_epoch"] >= 2
