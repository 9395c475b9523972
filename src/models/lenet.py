"""The MultiLeNet of Sener & Koltun (2018) for MultiMNIST: a LeNet trunk and a small MLP head per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from src.data.tasks import TaskSpec
from src.models.multitask import MultiTaskModel


class LeNetTrunk(nn.Module):
    """conv(1→10, 5) → pool → ReLU → conv(10→20, 5) → dropout → pool → ReLU → fc(320→hidden) → ReLU.

    Conditioned (``model.net.condition``), FiLM acts on the output of each convolution and of the fully connected
    layer, before their pooling and ReLU (:data:`SITES`).
    """

    SITES = ("conv1", "conv2", "fc")  # src.schema.LeNetConditionConfig.SITES

    def __init__(self, hidden: int = 50, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 10, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, kernel_size=5),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(320, hidden),
            nn.ReLU(),
        )

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.net(batch["x"])

    def film_sites(self) -> dict[str, tuple[nn.Module, int, int]]:
        """Where conditioning may act: name → (module, channels, the channels' dimension)."""
        conv1, conv2, fc = self.net[0], self.net[3], self.net[8]
        return dict(
            zip(self.SITES, [(conv1, conv1.out_channels, 1), (conv2, conv2.out_channels, 1), (fc, fc.out_features, -1)])
        )


def multi_lenet(
    tasks: Sequence[TaskSpec],
    hidden: int = 50,
    head_hidden: int | None = 50,
    dropout: float = 0.5,
    condition: Mapping[str, Any] | None = None,
) -> MultiTaskModel:
    """LeNet trunk and per-task heads ``fc(hidden→head_hidden) → ReLU → fc(→classes)``."""
    return MultiTaskModel(LeNetTrunk(hidden, dropout), hidden, tasks, head_hidden, condition=condition)
