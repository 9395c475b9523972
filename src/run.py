"""The command: compose the config, pin what the command line chose, and train (:func:`src.train.train`).

python -m src.run task=multimnist_left method=uniform
python -m src.run -m method=single_task,uniform seed=0,1

Importing this module imports no torch, Lightning or transformers (training's imports wait for :func:`main`'s
call), so ``python -m src.run ... --cfg job`` prints the composed config in about a second.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src.config import ConfigError
from src.runtime import pin


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the target's best dev score."""
    try:
        pin(cfg)  # what the command line chose, written into the config: the run reads no global of Hydra's
        if cfg.get("search") is not None:  # composed, but a run would ignore it
            raise ConfigError("search=... chooses a weight search: run it with python -m src.search, not src.run")
        from src.train import train  # torch, Lightning and transformers: only for a run that trains

        return train(cfg)["target_dev"]
    except ConfigError:
        if not cfg.launch.multirun:  # a sweep keeps the folder, so its report lists the job that failed
            _remove_unused_run_folder(Path(cfg.paths.output_dir))
        raise


def _remove_unused_run_folder(folder: Path) -> None:
    """A single run refused before it started leaves no folder: Hydra made it with only its config and log."""
    if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".hydra", "run.log"}:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
