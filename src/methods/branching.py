"""Methods that fork branches from the same parameters each epoch and merge them (αVIL, ForkMerge).

The epoch's first branch remembers θ and the optimizer state; every other branch starts from them; each
branch's end is kept as a flat vector; the merge writes the merged parameters and the optimizer state one
branch ended with (the target's, in both methods). What a method adds is its branches' plan and its merge.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import Tensor

from src.flat import assign, flatten
from src.methods.base import WeightingMethod


class BranchingMethod(WeightingMethod):
    """Fork, restore and merge of parameters and optimizer state; per-epoch buffers never cross an epoch."""

    whole_epochs = True  # the merge closes the epoch

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._clear_fork()

    def _clear_fork(self) -> None:
        self.theta: Tensor | None = None
        self._opt_start: dict | None = None  # the optimizer state every branch starts from (None: not reset)
        self._opt_kept: dict | None = None  # the state the merged model continues with

    def start_branch(self, module, first: bool, reset_optimizer: bool = True) -> None:
        """At a branch's first step: the first remembers θ (and the optimizer state); the others start from them."""
        params, opt = module.trainable(), module.optimizers().optimizer
        if first:
            self.theta = flatten(params)
            self._opt_start = copy.deepcopy(opt.state_dict()) if reset_optimizer else None
            return
        assign(params, self.theta)
        if self._opt_start is not None:
            opt.load_state_dict(copy.deepcopy(self._opt_start))

    def end_branch(self, module, keep_optimizer: bool = False) -> Tensor:
        """At a branch's last step: its parameters (flat); with ``keep_optimizer`` the merged model continues
        with this branch's optimizer state."""
        if keep_optimizer and self._opt_start is not None:
            self._opt_kept = copy.deepcopy(module.optimizers().optimizer.state_dict())
        return flatten(module.trainable())

    def merge(self, module, flat: Tensor) -> None:
        """Write the merged parameters, restore the kept optimizer state, and drop the fork."""
        assign(module.trainable(), flat)
        if self._opt_kept is not None:
            module.optimizers().optimizer.load_state_dict(self._opt_kept)
        self._clear_fork()
