"""The relatedness probe (callbacks=relatedness): its estimates by hand, and a run it leaves unchanged."""

from __future__ import annotations

import pytest
import torch

from src.relatedness import RelatednessProbe
from src.train import build, train


def test_probed_run_trains_exactly_as_without_the_probe(tiny_cfg, tmp_path):
    plain = train(tiny_cfg("method=uniform", "task.batching=mixed", "trainer.max_epochs=2"))
    (tmp_path / "run").rename(tmp_path / "plain")  # the probed run starts in a folder of its own
    probed = train(
        tiny_cfg(
            "method=uniform",
            "task.batching=mixed",
            "trainer.max_epochs=2",
            "callbacks=relatedness",
            "callbacks.relatedness.every_n_steps=3",
        )
    )
    for key in ("dev_history", "dev_loss_history", "target_test", "optimizer_steps", "passes", "examples_seen"):
        assert probed[key] == plain[key], key
    assert "relatedness" not in plain
    rel = probed["relatedness"]
    steps = probed["optimizer_steps"]
    assert rel["probed_steps"] == {"left": -(-steps // 3), "right": -(-steps // 3)}
    assert rel["cosine"]["left"] == pytest.approx(1.0, abs=1e-5)  # the target with itself
    assert set(rel["lookahead"]) == set(rel["influence"]) == {"left", "right"}


def test_sampled_steps_are_not_probed(tiny_cfg):
    results = train(tiny_cfg("method=uniform", "task.batching=sampled", "callbacks=relatedness"))
    assert results["relatedness"]["probed_steps"] == {}


def test_probe_estimates_by_hand(tiny_cfg):
    dm, module, trainer = build(tiny_cfg("method=uniform", "task.batching=mixed", "task.batch_size=16"))
    dm.setup()
    module.trainer = trainer
    trainer.strategy.connect(module)
    module.optimizers = lambda: type("O", (), {"optimizer": torch.optim.SGD(module.trainable(), lr=0.1)})()
    trainer.datamodule = dm
    data = {t: dm.train_sets[t].batch(torch.arange(16)) for t in ("left", "right")}
    step = type("S", (), {"data": data, "counts": {}})()
    probe = RelatednessProbe(every_n_steps=1, dev_examples=8)
    out = probe.measure(trainer, module, step, ["left", "right"])

    module.model.eval()
    shared = list(module.shared_parameters().values())

    def flat(loss):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared)])

    g_left, g_right = flat(module.loss("left", data["left"]).mean()), flat(module.loss("right", data["right"]).mean())
    g_dev = flat(module.loss("left", dm.dev_set.batch(torch.arange(8))).mean())
    with torch.no_grad():
        before = float(module.loss("left", data["left"]).mean())
        offset = 0
        for p in shared:
            p -= 0.1 * g_right[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        after = float(module.loss("left", data["left"]).mean())
    assert out["lookahead"]["right"] == pytest.approx(1 - after / before, rel=1e-4, abs=1e-6)
    cos = torch.nn.functional.cosine_similarity(g_left, g_right, dim=0)
    assert out["cosine"]["right"] == pytest.approx(float(cos), rel=1e-4, abs=1e-6)
    assert out["influence"]["right"] == pytest.approx(float(0.1 * g_right @ g_dev), rel=1e-4, abs=1e-7)
    assert module.spent["backward_passes"] == 0  # the probe's passes are not the method's


def test_probe_state_round_trips_and_rejects_bad_options():
    probe = RelatednessProbe()
    probe.sums["cosine"]["right"], probe.counts["right"], probe.seconds = 1.5, 3, 0.2
    other = RelatednessProbe()
    other.load_state_dict(probe.state_dict())
    assert other.results()["relatedness"]["cosine"] == {"right": 0.5}
    with pytest.raises(ValueError, match="every_n_steps=0"):
        RelatednessProbe(every_n_steps=0)
