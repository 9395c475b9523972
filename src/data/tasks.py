"""Task specifications and their metrics: the one place that knows how a task is scored."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics import (
    Accuracy,
    F1Score,
    Metric,
    MetricCollection,
    PearsonCorrCoef,
    SpearmanCorrCoef,
)
from torchmetrics.classification import MulticlassConfusionMatrix


@dataclass(frozen=True)
class TaskSpec:
    """What the framework needs to know about one task.

    Attributes:
        name: short task name, unique inside its task group (``left``, ``rte``).
        num_outputs: size of the head's output; 1 for regression.
        metrics: names of the metrics reported for the task, from :data:`METRICS`.
        headline: the GLUE-style headline: the mean of ``metrics`` (for MRPC the mean of F1 and
            accuracy, for STS-B of Pearson and Spearman, else the single metric). It drives checkpointing
            when the task is the target.
        head: the task whose head this one trains through (``None``: a head of its own). A control that asks the
            shared parameters, target head included, for the opposite of the target (``task.tasks.<name>.head``).
    """

    name: str
    num_outputs: int
    metrics: tuple[str, ...] = ("accuracy",)
    head: str | None = None

    @property
    def regression(self) -> bool:
        return self.num_outputs == 1

    @property
    def headline(self) -> str:
        return self.metrics[0] if len(self.metrics) == 1 else "avg(" + ",".join(self.metrics) + ")"

    def loss(self, outputs: Tensor, labels: Tensor) -> Tensor:
        """Per-example loss (no reduction), so methods can weight examples as well as tasks."""
        if self.regression:
            return torch.nn.functional.mse_loss(outputs.squeeze(-1), labels.float(), reduction="none")
        return torch.nn.functional.cross_entropy(outputs, labels.long(), reduction="none")

    def predictions(self, outputs: Tensor) -> Tensor:
        return outputs.squeeze(-1) if self.regression else outputs.argmax(-1)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({m: _metric(m, self.num_outputs) for m in self.metrics})


METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman")  # the metrics a task may name


def _metric(name: str, num_outputs: int) -> Metric:
    if name == "accuracy":
        return Accuracy(task="multiclass", num_classes=num_outputs)
    if name == "f1":  # binary F1 of the positive class, as GLUE reports it for MRPC and QQP
        return F1Score(task="binary")
    if name == "mcc":
        return MatthewsCorrCoef(num_outputs)
    if name == "pearson":
        return PearsonCorrCoef()
    if name == "spearman":
        return SpearmanCorrCoef()
    raise ValueError(f"unknown metric {name!r}; known: accuracy, f1, mcc, pearson, spearman")


class MatthewsCorrCoef(MulticlassConfusionMatrix):
    """Matthews correlation as GLUE scores CoLA (``sklearn.metrics.matthews_corrcoef``).

    torchmetrics' own MCC replaces a zero denominator by an epsilon and so scores a constant predictor
    above 0 (0.05 on a 70/30 split); undefined correlation is 0 here, as in sklearn and GLUE.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes=num_classes)

    def compute(self) -> Tensor:
        confmat = self.confmat.double()
        true, pred = confmat.sum(1), confmat.sum(0)
        total, correct = confmat.sum(), confmat.trace()
        cov_true_pred = correct * total - (true * pred).sum()
        cov_pred = total**2 - (pred * pred).sum()
        cov_true = total**2 - (true * true).sum()
        if cov_pred * cov_true == 0:
            return torch.zeros((), dtype=torch.float32)
        return (cov_true_pred / torch.sqrt(cov_true * cov_pred)).float()


def headline_value(spec: TaskSpec, values: dict[str, float]) -> float:
    """The headline score from computed metric values (keys as in ``spec.metrics``)."""
    return float(sum(values[m] for m in spec.metrics) / len(spec.metrics))
