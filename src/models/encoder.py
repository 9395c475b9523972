"""A Hugging Face encoder (``AutoModel``) as the shared trunk, for GLUE."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from src.data.tasks import TaskSpec
from src.models.multitask import MultiTaskModel

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class EncoderTrunk(nn.Module):
    """Any ``AutoModel`` (a Hub name or a local folder), pooled to one vector per example.

    Args:
        pretrained: Hub name (``roberta-base``) or folder of a Hugging Face model.
        pooling: ``cls`` (first token, as BERT/RoBERTa fine-tuning does) or ``mean`` (masked mean,
            as sentence-transformers models such as all-MiniLM-L6-v2 were trained).
    """

    def __init__(self, pretrained: str, pooling: str = "cls"):
        super().__init__()
        from transformers import AutoModel

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling={pooling!r}: must be cls or mean")
        self.encoder = AutoModel.from_pretrained(pretrained)
        self.encoder.train()  # from_pretrained returns eval mode; Lightning keeps modules' modes as found
        self.pooling = pooling
        self.hidden = self.encoder.config.hidden_size

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        hidden = self.encoder(**{k: batch[k] for k in INPUTS if k in batch}).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)


def multi_encoder(
    tasks: Sequence[TaskSpec],
    pretrained: str,
    pooling: str = "cls",
    dropout: float = 0.1,
    head_hidden: int | None = None,
) -> MultiTaskModel:
    """Encoder trunk and one head per task (classification, or regression for STS-B)."""
    trunk = EncoderTrunk(pretrained, pooling)
    return MultiTaskModel(trunk, trunk.hidden, tasks, head_hidden, dropout)
