"""What Hydra's running app says of this run: the options chosen, the command line's overrides, whether it is a
multirun's job. Outside a Hydra app (a test, a script, a search's trial composed by hand) each answers as for no
command line. A leaf: the record, the preemption hints and the search read these without importing the config.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig


def sweep_group() -> str:
    """The W&B group of a run: its multirun folder's name, or ``single`` outside a multirun."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return "single"
    multirun = hc.mode is not None and hc.mode.name == "MULTIRUN"
    return Path(hc.sweep.dir).name if multirun else "single"


def multirun() -> bool:
    """Whether this process runs a Hydra multirun's job."""
    try:
        mode = HydraConfig.get().mode
    except ValueError:
        return False
    return mode is not None and mode.name == "MULTIRUN"


def choice(group: str) -> str | None:
    """The option chosen for a config group (``task=glue_rte`` → ``glue_rte``), outside Hydra ``None``."""
    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:
        return None


def overrides() -> list[str]:
    """The command line's overrides of this run (outside Hydra: none)."""
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []
