"""A callback the two-process tests add from the command line: each process saves what it holds."""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback


class SaveRankState(Callback):
    """At the end of fitting, every process writes its parameters and method buffers to ``folder/rank<r>.pt``."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_end(self, trainer, module) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
        torch.save({"state": state, "history": module.method.history}, self.folder / f"rank{trainer.global_rank}.pt")
