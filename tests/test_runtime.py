"""A run is a function of its config: the entry point pins what Hydra's runtime says (src/runtime.py), and nothing
after it reads Hydra's global state."""

from __future__ import annotations

import json

import pytest
from hydra.core.hydra_config import HydraConfig

from src.config import ConfigError
from src.search.compose import composed
from src.train import train
from tests.conftest import TINY, compose_config


def test_pin_writes_the_choices_overrides_and_every_hydra_interpolation(tmp_path):
    cfg = compose_config(["task=multimnist_left", "method=uniform", "seed=3"], output_dir=tmp_path)
    assert cfg.launch.choices.task == "multimnist_left" and cfg.launch.choices.method == "uniform"
    assert list(cfg.launch.overrides) == [
        "task=multimnist_left",
        "method=uniform",
        "seed=3",
        f"paths.output_dir={tmp_path}",
    ]
    assert cfg.launch.multirun is False and cfg.launch.sweep_group == "single"
    assert cfg.run_name == "multimnist_left/uniform/seed3"  # was ${hydra:runtime.choices.task}/…


def test_a_launch_override_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"launch.multirun=true: launch is written by the entry point"):
        compose_config(["launch.multirun=true"], output_dir=tmp_path)


def test_a_run_records_its_own_config_whatever_hydras_global_says(tiny_cfg, tmp_path):
    """Hydra's global runtime set to another run's (as a search's own app is while its trials train): the run's
    record names its own choices and overrides, read from its config."""
    decoy = compose_config(["method=single_task", "seed=7"], output_dir=tmp_path / "decoy")
    HydraConfig.instance().set_config(decoy)
    try:
        results = train(tiny_cfg("method=uniform", "trainer.max_epochs=1", "test=false"))
    finally:
        HydraConfig.instance().cfg = None
    assert results["method_choice"] == "uniform" and "method=uniform" in results["overrides"]
    assert "method=single_task" not in results["overrides"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["method_choice"] == "uniform"


def test_a_trials_config_is_pinned_to_its_own_composition_and_sets_no_global(tiny_data, tmp_path):
    before = HydraConfig.instance().cfg
    overrides = [*TINY, f"paths.data_dir={tiny_data}", "method=static", f"paths.output_dir='{tmp_path}'"]
    cfg = composed(overrides)
    assert HydraConfig.instance().cfg is before  # composed without forging Hydra's runtime
    assert cfg.launch.choices.method == "static" and list(cfg.launch.overrides) == overrides
    assert cfg.paths.output_dir == str(tmp_path)


def test_hydra_interpolations_read_the_configs_own_node_with_their_types_and_escapes(tmp_path):
    from omegaconf import OmegaConf, open_dict

    from src.runtime import pin

    cfg = compose_config(["method=uniform"], output_dir=tmp_path)
    with open_dict(cfg):
        cfg.hydra.job.num = 3
        cfg.extra = {
            "num": "${hydra:job.num}",
            "escaped": "\\${hydra:job.num}",
            "nested": "${oc.select:nope,${hydra:job.num}}",
        }
    pin(cfg)
    assert cfg.extra.num == 3 and cfg.extra.nested == 3  # an int stays an int
    assert OmegaConf.to_container(cfg.extra, resolve=True)["escaped"] == "${hydra:job.num}"  # left as written


@pytest.mark.slow
def test_a_refused_launch_override_leaves_no_run_folder(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    args = [sys.executable, "-m", "src.run", "launch.multirun=true", f"hydra.run.dir={tmp_path}/run"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "launch.multirun=true: launch is written by the entry point" in proc.stderr
    assert not (tmp_path / "run").exists()
