"""What Hydra's running app says of a run, written into its config once, at the entry point.

A run is a function of its config: :func:`src.train.train` and what it records read ``cfg.launch`` (the options
chosen, the command line's overrides, whether the run is a multirun's job and its sweep's name) and never Hydra's
global state. The entry points (``python -m src.run``, ``python -m src.search``) call :func:`pin` on the config
Hydra hands them; a search pins each trial's config from the trial's own composition (its ``hydra`` node), so no
global is ever set for a trial. A config composed in a test or a script and not pinned reads as a run with no
command line: no choices, no overrides, not a multirun.

A leaf: the record, the preemption hints and the search read ``cfg.launch`` without importing anything of ``src``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

_HYDRA = re.compile(r"(?<!\\)\$\{hydra:")  # ${hydra:x} (not the escaped \${hydra:x}): Hydra's resolver


def pin(cfg: DictConfig) -> DictConfig:
    """``cfg`` with what it would read from Hydra's runtime written in: ``launch`` set, the runtime kept as the
    config's own ``hydra`` node, and every ``${hydra:x}`` outside it turned into ``${hydra.x}``, an interpolation
    into that node (types, nesting and escapes as OmegaConf resolves them; nothing falls back to a global).

    The runtime is ``cfg.hydra`` when the config carries it (``compose(..., return_hydra_config=True)``: a search's
    trial, a test), else the running Hydra app's, whose ``.hydra/config.yaml`` is then rewritten as pinned (Hydra
    wrote it before the run started); outside both, ``cfg`` is returned as it is. Returns ``cfg``; a ``launch.``
    override on the command line is refused by name once the rest is pinned.
    """
    running = "hydra" not in cfg
    hydra = _running() if running else cfg.hydra
    if hydra is None:
        return cfg
    launched = launch(hydra)
    with open_dict(cfg):
        if running:
            cfg.hydra = copy.deepcopy(hydra)
        for key, value in launched.items():
            cfg.launch[key] = value
        pointed = _point_at_node(cfg)
    if running:
        _save(cfg, hydra, pointed)
    if given := [o for o in launched["overrides"] if o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] == "launch"]:
        from src.schema import ConfigError  # a leaf still: the schema imports nothing of src

        raise ConfigError(f"{given[0]}: launch is written by the entry point from the command line, not an option")
    return cfg


def launch(hydra: DictConfig) -> dict[str, Any]:
    """``cfg.launch`` of a run whose Hydra runtime config is ``hydra``."""
    mode = OmegaConf.select(hydra, "mode", default=None)
    multirun = mode is not None and getattr(mode, "name", str(mode)) == "MULTIRUN"
    choices = OmegaConf.select(hydra, "runtime.choices", default=None)
    return {
        "choices": OmegaConf.to_container(choices) if choices else {},
        "overrides": list(OmegaConf.select(hydra, "overrides.task", default=None) or []),
        "multirun": multirun,
        "sweep_group": Path(hydra.sweep.dir).name if multirun else "single",
    }


def _running() -> DictConfig | None:
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get()
    except ValueError:  # no Hydra app runs: a test, a script
        return None


def _point_at_node(node: DictConfig | ListConfig, path: tuple = ()) -> list[tuple]:
    """``${hydra:x}`` → ``${hydra.x}`` in every value below ``node``, Hydra's own node left out; returns the paths
    (keys from the root) of the values it changed."""
    keys = range(len(node)) if isinstance(node, ListConfig) else [k for k in node if k != "hydra"]
    changed = []
    for key in keys:
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig) and not child._is_interpolation():
            if not child._is_none() and not child._is_missing():
                changed += _point_at_node(child, (*path, key))
        elif isinstance(raw := child._value(), str) and _HYDRA.search(raw):
            node[key] = _HYDRA.sub("${hydra.", raw)
            changed.append((*path, key))
    return changed


def _save(cfg: DictConfig, hydra: DictConfig, pointed: list[tuple]) -> None:
    """The run folder's ``.hydra/config.yaml`` as the run reads its config: ``launch`` pinned, the values that read
    Hydra's runtime resolved (Hydra's own node is hydra.yaml's), every other interpolation as written."""
    subdir = OmegaConf.select(hydra, "output_subdir", default=None)
    written = Path(OmegaConf.select(hydra, "runtime.output_dir", default=".")) / str(subdir) / "config.yaml"
    if subdir is None or not written.is_file():
        return
    from src.files import write_atomically  # a leaf, as this module

    shown = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    for *parents, key in pointed:
        source, target = cfg, shown
        for k in parents:
            source, target = source[k], target[k]
        value = source[key]
        target[key] = OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
    write_atomically(written, OmegaConf.to_yaml(shown))
