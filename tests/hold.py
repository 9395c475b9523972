"""A callback a subprocess test adds from the command line to keep a run busy until the test lets it go."""

from __future__ import annotations

import time
from pathlib import Path

from pytorch_lightning.callbacks import Callback


class HoldUntil(Callback):
    """At the end of the first training epoch, wait until ``release`` exists (at most ``timeout`` seconds): the run
    holds its folder, whatever the machine's speed, while the test does what needs it busy."""

    def __init__(self, release: str, timeout: float = 300.0):
        self.release, self.timeout = Path(release), timeout

    def on_train_epoch_end(self, trainer, module) -> None:
        deadline = time.monotonic() + self.timeout
        while trainer.current_epoch == 0 and not self.release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
