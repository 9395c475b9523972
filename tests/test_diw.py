"""DIW: the KMM solver against a reference QP, its constraints, and what it weights down."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import src.methods.diw as diw
from src.config import ConfigError, validate
from src.methods.diw import DIW, kmm_problem, kmm_solve, kmm_weights, median_bandwidth, project
from src.train import build, train
from tests.conftest import compose_config


def reference_qp(K: np.ndarray, kappa: np.ndarray, B: float, eps: float) -> np.ndarray:
    n = len(kappa)
    cons = [
        {"type": "ineq", "fun": lambda b: n * (1 + eps) - b.sum(), "jac": lambda b: -np.ones(n)},
        {"type": "ineq", "fun": lambda b: b.sum() - n * (1 - eps), "jac": lambda b: np.ones(n)},
    ]
    res = minimize(
        lambda b: 0.5 * b @ K @ b - kappa @ b,
        np.ones(n),
        jac=lambda b: K @ b - kappa,
        bounds=[(0, B)] * n,
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 2000},
    )
    assert res.success, res.message
    return res.x


def objective(K, kappa, b):
    return 0.5 * b @ K @ b - kappa @ b


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in range(1, 5))])  # ~1 s each
def test_kmm_matches_a_reference_qp(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 3, generator=g, dtype=torch.double)
    z = torch.randn(10, 3, generator=g, dtype=torch.double) * 0.7 + 0.8  # a shifted dev distribution
    K, kappa = kmm_problem(x, z, median_bandwidth(x, z))
    B, eps = 5.0, 0.1
    beta = kmm_solve(K, kappa, B, eps, steps=3000).numpy()
    ref = reference_qp(K.numpy(), kappa.numpy(), B, eps)
    n = len(beta)
    assert beta.min() >= 0 and beta.max() <= B + 1e-12
    assert n * (1 - eps) - 1e-9 <= beta.sum() <= n * (1 + eps) + 1e-9
    # Stated tolerance: objective no worse than the reference's by 1e-6 relative; β within 1e-2 each
    # (K is near-singular, so the objective is flat along some directions and β is pinned down loosely).
    ref_obj, obj = objective(K.numpy(), kappa.numpy(), ref), objective(K.numpy(), kappa.numpy(), beta)
    assert obj <= ref_obj + 1e-6 * abs(ref_obj)
    np.testing.assert_allclose(beta, ref, atol=1e-2)


def test_projection_is_onto_the_box_and_slab():
    v = torch.tensor([5.0, -1.0, 0.5, 3.0], dtype=torch.double)
    p = project(v, B=2.0, lo=2.0, hi=3.0)
    assert p.min() >= 0 and p.max() <= 2.0 and abs(p.sum().item() - 3.0) < 1e-9
    assert torch.equal(project(torch.ones(4, dtype=torch.double), 2.0, 3.0, 5.0), torch.ones(4, dtype=torch.double))


def bisection(v, B, lo, hi, iters=200):
    """The projection by bisection on τ (the solver's former method): a reference for the exact one."""
    target = v.clamp(0, B).sum().clamp(lo, hi)
    low, high = v.min() - B, v.max()
    for _ in range(iters):
        mid = (low + high) / 2
        low, high = (mid, high) if (v - mid).clamp(0, B).sum() > target else (low, mid)
    return (v - (low + high) / 2).clamp(0, B)


@pytest.mark.parametrize("seed", range(6))
def test_the_exact_projection_matches_bisection(seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(30, generator=g, dtype=torch.double) * 3
    v[:5] = v[5]  # ties among the breakpoints
    for B, lo, hi in [(2.0, 27.0, 33.0), (2.0, 50.0, 55.0), (5.0, 1.0, 2.0), (1.0, 30.0, 30.0)]:  # at hi: every β at B
        p = project(v, B, lo, hi)
        if lo <= v.clamp(0, B).sum() <= hi:
            torch.testing.assert_close(p, v.clamp(0, B), atol=0, rtol=0)
        else:
            torch.testing.assert_close(p, bisection(v, B, lo, hi), atol=1e-12, rtol=0)
        assert p.min() >= 0 and p.max() <= B and lo - 1e-9 <= p.sum() <= hi + 1e-9


def test_identical_training_and_dev_features_give_beta_one():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    beta = kmm_weights(x, x.clone(), B=10.0, eps=0.1, steps=500)
    torch.testing.assert_close(beta, torch.ones(40), atol=2e-2, rtol=0)


def test_examples_far_from_dev_get_lower_weight():
    g = torch.Generator().manual_seed(2)
    target = torch.randn(30, 4, generator=g)
    far = torch.randn(30, 4, generator=g) + 6.0  # an auxiliary task far away in feature space
    dev = torch.randn(20, 4, generator=g)
    beta = kmm_weights(torch.cat([target, far]), dev, B=10.0, eps=0.1, steps=300)
    assert beta[:30].mean() > 1.5 and beta[30:].mean() < 0.1


@pytest.mark.slow  # seconds of solver steps; the reference QP test stays fast
def test_warm_start_converges_to_the_same_solution():
    g = torch.Generator().manual_seed(3)
    x, z = torch.randn(30, 3, generator=g), torch.randn(15, 3, generator=g) + 0.5
    K, kappa = kmm_problem(x.double(), z.double(), median_bandwidth(x.double(), z.double()))
    cold = kmm_solve(K, kappa, 10.0, 0.1, steps=2000)
    warm = kmm_solve(K, kappa, 10.0, 0.1, steps=2000, beta0=torch.rand(30, generator=g, dtype=torch.double) * 3)
    assert abs(objective(K, kappa, cold) - objective(K, kappa, warm)) < 1e-6 * abs(objective(K, kappa, cold))


@pytest.mark.parametrize("features", ["hidden", "loss", "hidden+loss"])
def test_runs_end_to_end_with_each_feature_choice(features, tiny_cfg):
    results = train(tiny_cfg("method=diw", f"method.features={features}", "trainer.max_epochs=1"))
    w = results["weight_history"][0]
    assert set(w) == {"left", "right"}
    # the matching's constraint |Σβ − n| ≤ nε, with ε 0.1: a mixed step holds as many examples of each task
    # (32 of each here), so the mean of the tasks' mean β over the epoch is the mean β
    assert abs((w["left"] + w["right"]) / 2 - 1) <= 0.1 + 1e-3


def test_update_every_reuses_task_means(tiny_cfg, monkeypatch):
    """With update_every=3 KMM is solved at steps 0, 3, 6, ...; in between each example gets its task's last mean β."""
    solves, betas = [], []
    solve, observe = diw.kmm_weights, DIW.observe_weights

    def counted_solve(*args, **kwargs):
        solves.append(1)
        return solve(*args, **kwargs)

    def recorded(self, index, values):
        betas.append(values.detach().clone())
        observe(self, index, values)

    monkeypatch.setattr(diw, "kmm_weights", counted_solve)
    monkeypatch.setattr(DIW, "observe_weights", recorded)
    dm, module, trainer = build(tiny_cfg("method=diw", "method.update_every=3", "trainer.max_epochs=1"))
    trainer.fit(module, datamodule=dm)
    steps = len(betas)
    assert steps >= 4 and len(solves) == math.ceil(steps / 3)
    n = len(betas[1]) // 2  # left's examples, then right's
    for i in (1, 2):  # reused steps: one value per task, the mean of that task's β at the last solve
        assert torch.allclose(betas[i][:n], betas[0][:n].mean()) and torch.allclose(betas[i][n:], betas[0][n:].mean())
    assert not torch.allclose(betas[0], betas[0].mean())  # the solve itself weights examples unequally


@pytest.mark.parametrize(
    "override,message",
    [
        ("method.B=0.5", "method.B=0.5"),
        ("method.eps=1.0", "method.eps=1.0"),
        ("method.features=logits", "method.features='logits'"),
        ("method.kernel_bandwidth=wide", "method.kernel_bandwidth='wide'"),
        ("method.kernel_bandwidth=-2", "method.kernel_bandwidth=-2"),
        ("method.solver_steps=0", "method.solver_steps=0"),
        ("method.update_every=0", "method.update_every=0"),
    ],
)
def test_invalid_options_are_rejected(override, message, tmp_path):
    cfg = compose_config(["method=diw", override], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)
