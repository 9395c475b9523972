"""Learned weightings at equal steps: each method on ``task.batching=matched`` beside its mixed-batch runs.

    python -m experiments.matched_table DIR [DIR ...]

The folders hold a setting's grid (its oracle, taken by :mod:`experiments.frontier`'s rule), the methods' runs on
mixed batches and on matched batches. Per method: its optimizer steps, the paired Δ to the oracle (points, 95%
interval) on matched and on mixed batches, and the paired Δ to uniform on matched batches (the same batching's
control).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from experiments.frontier import frontier, setting_of
from experiments.report import collect, is_uniform
from experiments.stats import interval


def _delta(test: dict[int, float], reference: dict[int, float]) -> str:
    diffs = [100 * (test[s] - reference[s]) for s in test if s in reference]
    mean, half = interval(diffs)
    return "–" if not diffs else f"{mean:+.2f}" + (f" ± {half:.2f}" if len(diffs) > 1 else "")


def table(rows: dict[str, dict[str, Any]], oracle: dict[int, float], uniform: dict[str, dict[int, float]]) -> str:
    """``uniform``: uniform's test score per seed by batching (a fixed weighting: not among the learned rows)."""
    # uniform is this table's control, added here: the frontier's own row for it (a fixed weighting beside the
    # grid where matched batches are not among the grid's batchings) would list it twice
    rows = {k: r for k, r in rows.items() if not k.startswith("fixed, beside the grid: uniform · ")}
    rows = {**rows, **{f"uniform · {b}": {"test": test} for b, test in uniform.items()}}
    matched = {k.removesuffix(" · matched"): r for k, r in rows.items() if k.endswith(" · matched") and r["test"]}
    uniform = uniform.get("matched", {})
    lines = [
        "| method | seeds | Δ to the oracle, matched | Δ to uniform · matched | Δ to the oracle, mixed | mixed seeds |",
        "|---|---|---|---|---|---|",
    ]

    def mean_delta(item: tuple[str, dict]) -> float:
        test = item[1]["test"]
        return -sum(test[s] - oracle[s] for s in test) / len(test)

    for name, row in sorted(matched.items(), key=mean_delta):
        mixed = (rows.get(f"{name} · mixed") or {}).get("test", {})
        lines.append(
            f"| {name} | {', '.join(map(str, sorted(row['test'])))} | {_delta(row['test'], oracle)} | "
            f"{_delta(row['test'], uniform) if name != 'uniform' else '–'} | {_delta(mixed, oracle)} | "
            f"{', '.join(map(str, sorted(mixed))) or '–'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    runs = [r for d in args.dirs for r in collect(d)[0]]
    for setting, t in frontier(args.dirs, replay=False).items():
        if any(k.endswith(" · matched") for k in t["rows"]):
            uniform = {
                b: {
                    r["seed"]: r["target_test"]
                    for r in runs
                    if setting_of(r) == setting and is_uniform(r) and r.get("schedule") == b
                }
                for b in ("matched", "mixed")
            }
            print(f"## {setting}\n\nOracle: `{t['oracle']}` (seeds {', '.join(map(str, t['seeds']))}).\n")
            print(table(t["rows"], t["oracle_test"], uniform) + "\n")


if __name__ == "__main__":
    main()
