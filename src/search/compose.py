"""A trial's config, composed once, as ``python -m src.run`` would compose it.

The search's own command line is every trial's base (its search options, folder and Hydra's left out; a weight
search sets the method itself); a trial adds its point, its length within the full run's schedule, and its folder.
A hybrid's or a conditional search's source run is composed the same way, with its method instead of a point.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from src.config import ROOT
from src.runtime import pin
from src.search.strategies import WEIGHT, Point


def base_overrides(given: Sequence[str], weighted: bool) -> list[str]:
    """The search's command line as each trial's: its own options, the folder and Hydra's left out; a weight
    search sets the method (static) itself, so method options of another method are left out too."""
    out = []
    for o in given:
        key = o.lstrip("+~").split("=", 1)[0]
        if key == "search" or key.startswith(("search.", "search/", "hydra.", "hydra/", "paths.output_dir")):
            continue
        if key in ("ckpt_path", "test", "trainer.max_epochs"):
            continue
        if weighted and (key == "method" or key.startswith("method.")):
            continue
        out.append(o)
    return out


def point_overrides(point: Point, auxiliaries: Sequence[str], weighted: bool) -> list[str]:
    """The options that make a run of ``point``: a fixed weighting of the auxiliaries it keeps, and its other
    options."""
    out = []
    if weighted:
        weights = {k[len(WEIGHT) :]: float(v) for k, v in point.items() if k.startswith(WEIGHT)}
        kept = [t for t in auxiliaries if weights.get(t, 0) > 0]
        if kept:
            out += [
                "method=static",
                "method.weights={" + ",".join(f"{t}:{weights[t]!r}" for t in kept) + "}",
                "task.auxiliaries=[" + ",".join(kept) + "]",
                f"task.batching={point['batching']}",
            ]
        else:  # every auxiliary dropped: the target alone
            out.append("method=single_task")
    return out + [f"{k}={_value(v)}" for k, v in point.items() if not k.startswith(WEIGHT) and k != "batching"]


def run_overrides(epochs: int, full_epochs: int, folder: Path) -> list[str]:
    """A trial's length within its full run (the learning-rate schedule laid over the full run: a trial is its
    prefix), tested once it is the full run, continued from its last.ckpt, in its folder."""
    return [
        f"trainer.max_epochs={epochs}",
        f"model.lr_schedule.epochs={full_epochs}",
        f"test={str(epochs >= full_epochs).lower()}",
        "ckpt_path=auto",
        f"paths.output_dir='{folder}'",
    ]


def wandb_overrides(cfg: DictConfig, group: str, name: str) -> list[str]:
    """One W&B group per search, a run per trial."""
    if "wandb" not in (cfg.get("logger") or {}):
        return []
    return [f"logger.wandb.group='{group}'", f"logger.wandb.name='{name}'"]


def composed(overrides: Sequence[str]) -> DictConfig:
    """The config ``overrides`` compose, pinned to its own composition (src/runtime.py): the trial's record names
    its own overrides and choices, and no global of Hydra's is set for it."""
    with _initialized():
        return pin(hydra.compose("config", overrides=list(overrides), return_hydra_config=True))


@contextmanager
def _initialized() -> Iterator[None]:
    """Compose inside a Hydra app as it is configured (its --config-dir included); elsewhere (a test, a script)
    from this repository's conf/."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with hydra.initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        yield


def _value(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)
