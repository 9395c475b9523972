"""UPGrad: unconflicting projection of gradients (Quinton, Rey; "Jacobian Descent for Multi-Objective
Optimization", arXiv 2406.16232; TorchJD's ``UPGradWeighting``).

Every step holds a batch of every task. Each task's gradient on the shared parameters is projected onto
the dual cone of all of them (the set of directions that conflict with none), and the projections are
averaged: the update raises no task's loss to first order (it conflicts with none of their gradients).
TorchJD expresses it as one coefficient per task from the Gramian of the gradients; a task's logged weight is
its mean coefficient.
It balances every task, the target included; it is not a target-task rule.
"""

from __future__ import annotations

from torchjd.aggregation import UPGradWeighting

from src.methods.gradient_weighting import TorchJDWeighting
from src.methods.options import UPGradConfig


class UPGrad(TorchJDWeighting):
    """UPGrad on the shared parameters, with TorchJD's defaults."""

    Config = UPGradConfig
    distributed = True
    weighting = UPGradWeighting
