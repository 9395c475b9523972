"""The language setting with a known answer: a low-resource STS-B target beside two auxiliaries built from
the rest of STS-B's training split, one that should help and one that should not.

Written as CSV files for ``task=text`` (experiment=glue_stsb_known reads them):

- ``low``: ``target`` rows of STS-B train with their similarity scores (0–5), the regression target; its dev
  split is carved from these rows as for any target (``task.dev_fraction``). Test: STS-B validation.
- ``binary``: every other train row, its score binarised (``label`` 1 when the score is at least
  ``threshold``): the same kind of sentence pairs and a label that carries most of the target's signal, so it
  should help.
- ``noise``: the same rows and the same share of ones as ``binary``, the labels permuted: nothing to learn
  that transfers, so it should not help, and a weighting should silence it. Measured, it helped (+1.70 ± 1.39
  points alone): random labels on these pairs regularise the encoder rather than pull it away.
- ``inverted``: the same rows with their scores mapped to 5 − score, the candidate harmful control
  (experiment=glue_stsb_harmful): the target's own kind of pairs, with the similarity turned upside down.
  Whether it hurts is measured against single-task, not assumed (experiments/results/glue/README.md).

The target's rows and the auxiliaries' are disjoint, and the split is fixed (``seed``), so every run and
seed of the experiment sees the same files.

    python -m experiments.stsb_known        # into <paths.cache_dir>/stsb_known, where the experiment reads them
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

from src.data.glue import preset, resolve_source, source_files
from src.data.text import read_split

COLUMNS = ["sentence1", "sentence2", "label"]
ROOT = Path(__file__).resolve().parents[1]
# as conf/paths: ALPHAVIL_DATA_DIR / ALPHAVIL_CACHE_DIR, else data/ and .cache/ in the repository
DATA_DIR = Path(os.environ.get("ALPHAVIL_DATA_DIR", ROOT / "data"))
OUT = Path(os.environ.get("ALPHAVIL_CACHE_DIR", ROOT / ".cache")) / "stsb_known"


def read(source: str, split: str, cache_dir: Path) -> pd.DataFrame:
    """STS-B's ``split`` from ``source`` (a local GLUE copy or the Hub), through the framework's reader."""
    task = preset("stsb", source)
    files = source_files(source, "stsb", split)
    return read_split(task, split, cache_dir, f"GLUE stsb ({source})", files).to_pandas()[COLUMNS]


def build(train: pd.DataFrame, test: pd.DataFrame, target: int, threshold: float, seed: int) -> dict[str, pd.DataFrame]:
    """The files' tables: ``low`` and ``low_test`` (scores), ``binary``, ``noise`` and ``binary_test`` (0/1),
    ``inverted`` and ``inverted_test`` (5 − score)."""
    if not 0 < target < len(train):
        raise ValueError(f"target={target}: must leave rows for the auxiliaries (STS-B train has {len(train)})")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    low, rest = train.iloc[order[:target]], train.iloc[order[target:]]
    binary = rest.assign(label=(rest["label"] >= threshold).astype(int))
    noise = binary.assign(label=rng.permutation(binary["label"].to_numpy()))
    binary_test = test.assign(label=(test["label"] >= threshold).astype(int))
    inverted = rest.assign(label=5.0 - rest["label"])
    return {
        "low": low,
        "low_test": test,
        "binary": binary,
        "noise": noise,
        "binary_test": binary_test,
        "inverted": inverted,
        "inverted_test": test.assign(label=5.0 - test["label"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="auto", help="auto (<data-dir>/glue, else the Hub), a folder or Hub name")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="paths.data_dir (where auto looks)")
    parser.add_argument("--out", type=Path, default=OUT, help="<paths.cache_dir>/stsb_known")
    parser.add_argument("--target", type=int, default=1111, help="rows of the target (1,000 train + its dev)")
    parser.add_argument("--threshold", type=float, default=2.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = resolve_source(args.source, args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "datasets"
    tables = build(
        read(source, "train", cache), read(source, "validation", cache), args.target, args.threshold, args.seed
    )
    for name, table in tables.items():
        table.to_csv(args.out / f"{name}.csv", index=False)
    ones = tables["binary"]["label"].mean()
    print(f"{args.out}: low {len(tables['low'])}, binary and noise {len(tables['binary'])} ({ones:.0%} ones)")


if __name__ == "__main__":
    main()
