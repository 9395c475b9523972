"""``python -m src.search``: the Hydra entry point of a weight search (:mod:`src.search.command`)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src.record import restore_hydra_files
from src.runtime import pin
from src.schema import ConfigError
from src.search.command import run_search


@hydra.main(config_path="../../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    try:
        pin(cfg)  # what the command line chose, written into the config (src/runtime.py)
        result = run_search(cfg)
    except ConfigError:
        restore_hydra_files(Path(cfg.paths.output_dir))  # refused: Hydra's rewrite of .hydra must not stay
        raise
    return result["chosen"]["dev"] if result.get("chosen") else None


if __name__ == "__main__":
    if not any(a.startswith("hydra.job.name=") for a in sys.argv):
        sys.argv.append("hydra.job.name=search")  # the search's log is <folder>/search.log, not __main__.log
    main()
