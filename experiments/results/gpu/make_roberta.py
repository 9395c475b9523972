"""A roberta-base-shaped encoder (12 layers, hidden 768, 125M parameters), randomly initialised, with
MiniLM's tokenizer: roberta-base's weights cannot be reached from the device machine. It measures speed and
memory only; its scores mean nothing."""

import shutil
import sys
from pathlib import Path

from transformers import RobertaConfig, RobertaModel

out = Path(sys.argv[1])
cfg = RobertaConfig(vocab_size=30522, type_vocab_size=2, pad_token_id=0)
RobertaModel(cfg).save_pretrained(out)
tok = Path(".gpu/data/models/all-MiniLM-L6-v2")
for f in ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]:
    shutil.copy(tok / f, out / f)
print("parameters:", sum(p.numel() for p in RobertaModel.from_pretrained(out).parameters()))
