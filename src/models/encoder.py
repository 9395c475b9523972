"""A Hugging Face encoder (``AutoModel``) as the shared trunk, for GLUE."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from src.data.base import DataError
from src.data.tasks import TaskSpec
from src.models.multitask import MultiTaskModel

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def looks_like_a_path(name: str) -> bool:
    """A folder rather than a Hub name (``roberta-base``, ``sentence-transformers/all-MiniLM-L6-v2``)."""
    return Path(name).is_absolute() or name.startswith((".", "~"))


def load_pretrained(load: Callable[[str], Any], name: str, what: str) -> Any:
    """``load(name)`` (a ``from_pretrained``) with errors that name the folder and the file at fault.

    A missing local folder would otherwise read as an invalid Hub repo id, and a truncated weights file
    as a header error that names no file.
    """
    folder = Path(name).expanduser()
    if looks_like_a_path(name) and not folder.is_dir():
        raise DataError(
            f"the {what} folder {name} does not exist. Put the Hugging Face files there (docs/data.md says where each "
            "comes from), point ALPHAVIL_DATA_DIR at the folder that holds models/, or set model.pretrained to a Hub "
            "name."
        )
    try:
        return load(name)
    except Exception as e:
        cause = e.__cause__ or e
        if not looks_like_a_path(name) and not folder.is_dir():  # a Hub name: not reachable, not in the cache
            raise DataError(
                f"could not load the {what} {name} from the Hugging Face Hub or its local cache "
                f"({type(cause).__name__}: {cause}). Offline, point model.pretrained at a folder that holds its files "
                "(model.pretrained=/path/to/roberta-base, or model=minilm for the all-MiniLM-L6-v2 copy under "
                "ALPHAVIL_DATA_DIR/models), or fill the cache once where the Hub is reachable."
            ) from e
        broken = unreadable_files(folder) if folder.is_dir() else []
        where = f"{', '.join(str(p) for p in broken)} cannot be read" if broken else f"the files in {name}"
        raise DataError(
            f"could not load the {what} from {name} ({type(cause).__name__}: {cause}): {where}. A truncated or "
            "corrupt file needs a fresh copy (docs/data.md says where each comes from)."
        ) from e


def unreadable_files(folder: Path) -> list[Path]:
    """The weights (safetensors) and JSON files in ``folder`` that fail to parse: truncated or corrupt."""
    import json

    from safetensors import safe_open

    broken = []
    for path in sorted(folder.iterdir()):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    f.keys()
            elif path.suffix == ".json":
                json.loads(path.read_text())
        except Exception:
            broken.append(path)
    return broken


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
        # float32 whatever the checkpoint stores: transformers 5 loads a float16 or bfloat16 checkpoint in its
        # own dtype, whose parameters diverge under bf16-mixed training; the precision plugin casts from here
        self.encoder = load_pretrained(AutoModel.from_pretrained, pretrained, "encoder").float()
        self.encoder.train()  # from_pretrained returns eval mode; Lightning keeps modules' modes as found
        self.pooling = pooling
        self.hidden = self.encoder.config.hidden_size

    def film_sites(self) -> dict[str, tuple[nn.Module, int, int]]:
        """Where conditioning may act: the hidden states after each transformer layer (``layer0``, …), the hidden
        size in the last dimension. The layers are found where BERT-, RoBERTa- and DistilBERT-like encoders keep
        them; an encoder that keeps them elsewhere offers no site."""
        for path in ("encoder.layer", "transformer.layer", "layers", "layer", "h", "block"):
            try:
                layers = self.encoder.get_submodule(path)
            except AttributeError:
                continue
            if isinstance(layers, nn.ModuleList) and len(layers):
                return {f"layer{i}": (layer, self.hidden, -1) for i, layer in enumerate(layers)}
        return {}

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
    condition: Mapping[str, Any] | None = None,
) -> MultiTaskModel:
    """Encoder trunk and one head per task (classification, or regression for STS-B)."""
    trunk = EncoderTrunk(pretrained, pooling)
    return MultiTaskModel(trunk, trunk.hidden, tasks, head_hidden, dropout, condition=condition)
