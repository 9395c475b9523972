"""Every key of ``results.json``, declared once with its meaning: :class:`RunResults`.

docs/budget.md's key table is checked against :data:`KEYS` by a test. A method's per-epoch histories
(``<prefix>_history``, see :meth:`src.methods.base.WeightingMethod.histories`) and a callback's results
(``results()``, the relatedness probe's estimates) join the record under their own keys, named by :data:`OPEN_KEYS`.
How a run fills the record is :mod:`src.record`'s. A leaf: the methods name the record's type without importing
the run's machinery.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _key(meaning: str, default: Any = None) -> Any:
    """A record field with its meaning (read by :data:`KEYS` and the docs' key table)."""
    if isinstance(default, dict | list):
        return field(default_factory=type(default), metadata={"meaning": meaning})
    return field(default=default, metadata={"meaning": meaning})


@dataclass
class RunResults:
    """What a finished run writes to results.json. Scores are the target's headline metric."""

    # what ran
    target: str = _key("the target task")
    method: str = _key("the weighting method's class")
    method_choice: str | None = _key("the `method=` option the run was started with")
    task_config: str | None = _key("the `task=` option the run was started with")
    tasks: list[str] = _key("the training tasks, the target first", [])
    target_metric: str = _key("the target's headline metric (accuracy, f1, pearson_spearman, ...)")
    # scores
    target_dev: float | None = _key("the target's dev score of the tested epoch")
    target_test: float | None = _key("the target's test score of the tested weights (null without a test)")
    best_epoch: int | None = _key("the epoch with the best dev score (null when no best checkpoint was kept)")
    tested_epoch: int | None = _key("the epoch whose weights were tested")
    tested_weights: str = _key("`best` (the best dev epoch's checkpoint) or `last` (the last epoch's weights)")
    dev_history: list[float] = _key("the target's dev score after each epoch", [])
    dev_loss_history: list[float] = _key("the target's mean dev loss after each epoch", [])
    test: dict[str, dict[str, float]] = _key("every test set's metrics (`score`: its headline)", {})
    warnings: list[str] = _key("what looks wrong with the run (a diverging loss): its numbers are suspect", [])
    # what it spent
    epoch_seconds: list[float] = _key("seconds of training in each epoch", [])
    mean_epoch_seconds: float = _key("the mean of epoch_seconds", math.nan)
    wall_seconds: float | None = _key("seconds from the start of training to the written record, testing included")
    train_examples: dict[str, int] = _key("the size of each task's training split", {})
    examples_seen: dict[str, int] = _key("training examples each task's loss was taken on, over the run", {})
    budget: dict[str, Any] = _key(
        "`rule` (and its parameter), `per_epoch` (examples of each task per epoch), `batching` (what the steps "
        "held: the method's own schedule where it has one)",
        {},
    )
    schedule: str = _key("what the steps held: `mixed`, `sampled`, `matched`, `blocks`, `branches`, `target`")
    budget_multiple: dict[str, float] = _key("`examples_seen` over what the budget planned for the epochs run", {})
    dev_examples: int = _key("the size of the target's dev split", 0)
    optimizer_steps: int = _key("updates of the model's parameters", 0)
    passes: dict[str, int] = _key(
        "`forward` and `backward` passes of the model over a batch in training (α-steps, look-aheads, trial "
        "steps, merge evaluations included); `applied`: combined gradients applied without a pass of their own",
        {},
    )
    dev_examples_used: int = _key("dev examples a method trained its weights on", 0)
    peak_memory_mb: float = _key(
        "peak memory: the GPU's peak allocated memory in training on CUDA, else the process's peak resident size"
    )
    peak_memory_scope: str = _key(
        "what `peak_memory_mb` covers: `training` (reset when training started) or `process` (since the process "
        "started, a multirun's earlier jobs included: where the peak cannot be reset, or a record from before "
        "2026-12-07, which lacks this key)"
    )
    precision: str = _key("the numeric precision the run got (`trainer.precision=auto` resolved)")
    # the weights
    weights: dict[str, float] = _key("each task's final weight", {})
    weight_history: list[dict[str, float]] = _key("each task's weight after each epoch", [])
    # what defines the run
    seed: int = _key("the run's seed", 0)
    epochs: int = _key("`trainer.max_epochs`", 0)
    overrides: list[str] = _key("the command-line overrides", [])
    run_record: dict[str, Any] = _key("the settings that define the run (a resume must match them)", {})
    data: dict[str, str] = _key("the identity of each task's data (content keys): a resume must match it", {})
    # open keys: a method's histories, a task group's record, a callback's results
    extra: dict[str, Any] = _key("(flattened into the record) the keys of OPEN_KEYS", {})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {**{k: v for k, v in out.items() if k != "extra"}, **out["extra"]}


KEYS: dict[str, str] = {f.name: f.metadata["meaning"] for f in fields(RunResults) if f.name != "extra"}
OPEN_KEYS: dict[str, str] = {
    "<prefix>_history": "a method's own per-epoch records (`alpha_history`, `method_history`, ...)",
    "label_names": "text and image tasks: the class order of labels read as strings",
    "relatedness": "callbacks=relatedness: the probe's estimates per auxiliary",
    "conditional": "method=conditional: every scored weighting's dev score, the chosen λ*, the scoring's cost",
}
