"""SLGrad's and GradNorm's rules on hand-computed values, and their steps on the tiny MNIST."""

from __future__ import annotations

import pytest
import torch

from src.data.schedule import DEV
from src.methods.gradnorm import gradnorm_update
from src.methods.slgrad import sample_weights
from src.train import build


def test_gradnorm_update_by_hand():
    # norms 1 and 3, weights 1 and 1: G = (1, 3), Ḡ = 2; equal training rates (r = 1, 1): targets 2 and 2.
    # ∂L_grad/∂w = sign(G − 2)·norm = (−1, +3); step 0.1 → (1.1, 0.7); renormalised to sum 2 → (1.2222, 0.7778)
    new = gradnorm_update(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5]), 1.5, 0.1, 1e-3)
    torch.testing.assert_close(new, torch.tensor([1.1, 0.7]) * (2 / 1.8))
    # α weights the slower task: rates (0.9, 0.3)/0.6 = (1.5, 0.5); α = 1: targets 2·1.5 = 3 and 2·0.5 = 1, with
    # G = (2, 2) from weights (1, 1) and norms (2, 2): grads (−2, +2); step 0.1 → (1.2, 0.8), already sum 2
    new = gradnorm_update(torch.ones(2), torch.full((2,), 2.0), torch.tensor([0.9, 0.3]), 1.0, 0.1, 1e-3)
    torch.testing.assert_close(new, torch.tensor([1.2, 0.8]))
    # the floor: a weight pushed below min_weight is held there before the renormalisation
    new = gradnorm_update(torch.tensor([0.05, 1.95]), torch.tensor([10.0, 0.1]), torch.ones(2), 0.0, 0.1, 0.01)
    torch.testing.assert_close(new, torch.tensor([0.01, 1.96]) * (2 / 1.97))


def test_gradnorm_steps_with_the_weights_it_had_and_records_the_first_losses(tiny_cfg):
    dm, module, _ = build(tiny_cfg("method=gradnorm", "task.batch_size=16"))
    dm.setup()
    batch = {t: dm.train_sets[t].batch(torch.arange(16)) for t in ("left", "right")}
    method = module.method
    grads = module.task_gradients(module.task_losses(batch))
    used = method.coefficients(module, grads, None)
    assert used.tolist() == [1.0, 1.0]  # the first step trains uniformly
    assert method.coefficients(module, grads, None).tolist() == [1.0, 1.0]  # the rule changes no state
    assert torch.isnan(method.initial_losses).all()
    method.update(module, grads, used)  # after the step: the weights' own step
    torch.testing.assert_close(method.initial_losses, grads.losses)
    expected = gradnorm_update(torch.ones(2), grads.shared.norm(dim=1), torch.ones(2), 1.5, 0.025, 1e-3)
    torch.testing.assert_close(method.w, expected)
    assert float(method.w.sum()) == pytest.approx(2.0)


def test_slgrad_sample_weights_by_hand():
    # cosines (0.5, −0.2, 0.25, 0): positive parts (0.5, 0, 0.25, 0) sum 0.75 over 4 examples → × 4/0.75
    torch.testing.assert_close(
        sample_weights(torch.tensor([0.5, -0.2, 0.25, 0.0])), torch.tensor([8 / 3, 0.0, 4 / 3, 0.0])
    )
    assert sample_weights(torch.tensor([-0.1, 0.0])).tolist() == [1.0, 1.0]  # nothing aligns: uniform
    # a shard of a step: the whole step's sum and count
    torch.testing.assert_close(sample_weights(torch.tensor([0.2, 0.4]), torch.tensor(1.2), 6), torch.tensor([1.0, 2.0]))


def test_example_gradients_match_one_backward_per_example(tiny_cfg):
    dm, module, _ = build(tiny_cfg("method=slgrad", "task.batch_size=8"))
    dm.setup()
    batch = dm.train_sets["right"].batch(torch.arange(5))
    shared = list(module.shared_parameters().values())
    with module.evaluating():
        rows = module.example_gradients("right", batch)
        for i in range(5):
            one = {k: v[i : i + 1] for k, v in batch.items()}
            g = torch.autograd.grad(module.loss("right", one).sum(), shared)
            torch.testing.assert_close(rows[i], torch.cat([x.reshape(-1) for x in g]), atol=1e-5, rtol=1e-4)


def test_slgrad_step_weights_each_example_by_its_cosine_with_the_dev_gradient(tiny_cfg):
    """The step's gradient is that of Σ_k mean_i w_ki ℓ_ki with w from the cosines, computed here by hand."""
    dm, module, _ = build(tiny_cfg("method=slgrad", "task.batch_size=8", "model.net.dropout=0"))
    dm.setup()
    method = module.method
    data = {t: dm.train_sets[t].batch(torch.arange(6)) for t in ("left", "right")}
    data[DEV] = dm.dev_set.batch(torch.arange(6))
    step = type("S", (), {"data": data})()
    shared = list(module.shared_parameters().values())
    dev_grad = torch.autograd.grad(module.loss("left", data[DEV]).mean(), shared)
    dev = torch.cat([g.reshape(-1) for g in dev_grad])
    cosines = []
    for t in ("left", "right"):
        for i in range(6):
            g = torch.autograd.grad(module.loss(t, {k: v[i : i + 1] for k, v in data[t].items()}).sum(), shared)
            cosines.append(torch.nn.functional.cosine_similarity(torch.cat([x.reshape(-1) for x in g]), dev, dim=0))
    alignments = method.alignments(module, step)
    torch.testing.assert_close(
        torch.cat([alignments["left"], alignments["right"]]), torch.stack(cosines), atol=1e-5, rtol=1e-4
    )
    w = sample_weights(torch.stack(cosines).detach())
    assert float(w.mean()) == pytest.approx(1.0) and bool((w >= 0).all())
    losses = torch.cat([module.loss(t, data[t]) for t in ("left", "right")]).detach()
    expected = (w[:6] * losses[:6]).mean() + (w[6:] * losses[6:]).mean()
    taken = []
    module.backward_and_step = lambda loss, check=True: taken.append(loss.detach())
    method.step(module, step)
    torch.testing.assert_close(taken[0], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(method._weight_sum, torch.stack([w[:6].mean(), w[6:].mean()]), atol=1e-5, rtol=1e-4)


def test_slgrad_chunks_give_the_same_alignments(tiny_cfg):
    dm, module, _ = build(tiny_cfg("method=slgrad", "task.batch_size=8"))
    dm.setup()
    data = {t: dm.train_sets[t].batch(torch.arange(7)) for t in ("left", "right")}
    data[DEV] = dm.dev_set.batch(torch.arange(6))
    step = type("S", (), {"data": data})()
    whole = module.method.alignments(module, step)
    module.method.cfg.chunk_size = 3  # 3 + 3 + 1 examples
    chunked = module.method.alignments(module, step)
    for task in whole:
        torch.testing.assert_close(chunked[task], whole[task], atol=1e-5, rtol=1e-4)
