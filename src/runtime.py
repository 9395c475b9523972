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

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

_HYDRA = re.compile(r"\$\{hydra:([^{}]+)\}")


def pin(cfg: DictConfig) -> DictConfig:
    """``cfg`` with what it would read from Hydra's runtime written in: ``launch`` set, and every ``${hydra:…}``
    interpolation outside Hydra's own node (``paths.output_dir``, ``search.dir``) replaced by its value.

    The runtime is ``cfg.hydra`` when the config carries it (``compose(..., return_hydra_config=True)``: a search's
    trial, a test), else the running Hydra app's; outside both, ``cfg`` is returned as it is. Returns ``cfg``.
    """
    hydra = cfg.get("hydra") if "hydra" in cfg else _running()
    if hydra is None:
        return cfg
    launched = launch(hydra)
    if given := [o for o in launched["overrides"] if o.lstrip("+~").startswith("launch")]:
        from src.schema import ConfigError  # a leaf still: the schema imports nothing of src

        raise ConfigError(f"{given[0]}: launch is written by the entry point from the command line, not an option")
    with open_dict(cfg):
        for key, value in launched.items():
            cfg.launch[key] = value
        _substitute(cfg, hydra)
    return cfg


def launch(hydra: DictConfig) -> dict[str, Any]:
    """``cfg.launch`` of a run whose Hydra runtime config is ``hydra``."""
    mode = OmegaConf.select(hydra, "mode", default=None)
    multirun = mode is not None and getattr(mode, "name", str(mode)) == "MULTIRUN"
    choices = OmegaConf.select(hydra, "runtime.choices", default=None) or {}
    return {
        "choices": {k: v for k, v in OmegaConf.to_container(choices).items()} if choices else {},
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


def _substitute(node: DictConfig | ListConfig, hydra: DictConfig) -> None:
    """Replace ``${hydra:path}`` in every value below ``node`` (Hydra's own node left out) by ``path``'s value."""
    keys = range(len(node)) if isinstance(node, ListConfig) else [k for k in node if k != "hydra"]
    for key in keys:
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig) and not child._is_interpolation():
            if not child._is_none() and not child._is_missing():
                _substitute(child, hydra)
            continue
        raw = child._value()
        if not isinstance(raw, str) or "${hydra:" not in raw:
            continue
        values = {m: OmegaConf.select(hydra, m, default=None, throw_on_missing=False) for m in _HYDRA.findall(raw)}
        if any(v is None for v in values.values()):
            continue  # not set in this runtime (a composed trial has no output_dir of Hydra's): left as written
        node[key] = _HYDRA.sub(lambda m, found=values: str(found[m.group(1)]), raw)
