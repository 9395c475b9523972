"""W&B in offline mode: what a run records locally (config, tags, group, per-epoch weights, summary)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from src.train import train

pytest.importorskip("wandb")


def records(path: Path):
    """Records of an offline ``run-*.wandb`` file: a W&B header, then LevelDB-log framed protobufs."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    block, pos, buf = 32768, 7, b""
    while pos + 7 <= len(raw):
        if (left := block - pos % block) < 7:  # block trailer
            pos += left
            continue
        length, kind = struct.unpack("<HB", raw[pos + 4 : pos + 7])
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        buf = data if kind in (1, 2) else buf + data  # FULL/FIRST start a record, MIDDLE/LAST extend it
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


def read_run(run_dir: Path) -> dict:
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    out = {"history": [], "summary": {}, "config": {}, "exit": None}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "history":
            out["history"].append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            out["summary"].update({"/".join(u.nested_key) or u.key: json.loads(u.value_json) for u in r.summary.update})
        elif kind == "exit":
            out["exit"] = r.exit.exit_code
    return out


def test_offline_run_records_config_tags_weights_and_summary(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    results = train(tiny_cfg("logger=wandb", "method=alphavil", "method.alpha_steps=2"))
    run = read_run(tmp_path / "run")
    assert list(run["run"].tags) == ["multimnist", "target=left", "method=alphavil", "seed=0"]
    assert run["run"].run_group == "single" and run["run"].job_type == "alphavil"
    assert run["config"]["method"]["alpha_steps"] == 2 and run["config"]["task"]["target"] == "left"
    epochs = [h for h in run["history"] if "weight/right" in h]
    assert [h["weight/right"] for h in epochs] == pytest.approx([w["right"] for w in results["weight_history"]])
    assert any("alpha/left" in h for h in run["history"])
    assert run["summary"]["final/target_test"] == pytest.approx(results["target_test"])
    assert run["exit"] == 0
    assert (tmp_path / "run" / "csv" / "metrics.csv").exists()  # CSV beside W&B


def test_a_failing_run_still_closes_its_wandb_run(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("pytorch_lightning.Trainer.fit", boom)
    with pytest.raises(RuntimeError, match="boom"):
        train(tiny_cfg("logger=wandb"))
    import wandb

    assert wandb.run is None
    assert read_run(tmp_path / "run")["exit"] == 1


def test_a_search_is_one_wandb_group_with_a_run_per_trial_and_its_weights_in_the_config(
    tiny_cfg, tmp_path, monkeypatch
):
    from src.search.command import run_search

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = tiny_cfg("logger=wandb", "search=grid", "search.space.weights=[0,0.3]", "trainer.max_epochs=1",
                   f"search.dir={tmp_path}/search")  # fmt: skip
    run_search(cfg)
    runs = {p.name: read_run(p) for p in (tmp_path / "search" / "trials").iterdir()}
    assert set(runs) == {"single", "right-0.3_sampled"}
    assert {r["run"].run_group for r in runs.values()} == {"search-multimnist_left-grid-seed0"}
    assert runs["right-0.3_sampled"]["run"].display_name == "right-0.3_sampled"
    assert runs["right-0.3_sampled"]["config"]["method"]["weights"] == {"right": 0.3}
    assert all(r["exit"] == 0 for r in runs.values())
