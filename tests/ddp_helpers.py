"""What the two-process tests run in their processes: a callback by which each process saves what it holds, and
every method's two-process run in one pair of processes.

    python -m tests.ddp_helpers DATA OUT METHOD [METHOD ...]

runs each method's two-process run (DDP over gloo, ``trainer.devices=2``) one after the other, into
``OUT/<method>/``. Lightning starts the second process at the first fit, running this same command; each later
fit finds ``LOCAL_RANK`` set and joins the second process's next fit, and ``train`` ends its process group after
each run. Two interpreters for every method instead of two for each (a Lightning import costs a CPU-core about 10
seconds): what the per-method test compares is the same, with one launch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback

# HydaLearn's weights are ratios of loss drops after trial steps; at the optimizer's learning rate (1e-3) these
# drops are ~1e-6, where float32 rounding of the losses (summed in another order on two processes) moves
# them by percents. A larger trial step makes the comparison one of the method's logic, not of rounding.
EXTRA = {"hydalearn": ["method.lookahead_lr=0.1"]}


def common(tiny_data, method: str) -> list[str]:
    """A two-process test's overrides: the tiny MNIST, 2 epochs of 5 global batches, no dropout (its masks depend
    on the shape of each process's shard)."""
    return [
        f"method={method}",
        *EXTRA.get(method, []),
        f"paths.data_dir={tiny_data}",
        "task.verify_checksums=false",
        "task.download=false",
        "task.max_train_examples=160",
        "task.max_eval_examples=64",
        "task.batch_size=32",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.accelerator=cpu",
        "model.net.dropout=0",
        "logger=none",
        "ckpt_path=null",
    ]


class SaveRankState(Callback):
    """At the end of fitting, every process writes its parameters and method buffers to ``folder/rank<r>.pt``."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_end(self, trainer, module) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
        torch.save({"state": state, "history": module.method.history}, self.folder / f"rank{trainer.global_rank}.pt")


def main(argv: list[str]) -> None:
    from src.train import train
    from tests.conftest import compose_config

    data, out, *methods = argv
    cache = Path(out).parent / "cache"  # the one-process references' cache too
    for method in methods:
        folder = Path(out) / method
        overrides = [*common(data, method), f"paths.cache_dir={cache}", "trainer.devices=2", "trainer.strategy=ddp"]
        train(compose_config(overrides, output_dir=folder), callbacks=[SaveRankState(str(folder / "ranks"))])


if __name__ == "__main__":
    main(sys.argv[1:])
