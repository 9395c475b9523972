"""How well one conditional run ranks the weightings: its dev scores against a recorded grid's, per seed.

    python -m experiments.conditional DIR [DIR ...] [--out FILE]

The folders hold ``method=conditional`` runs (results.json with a ``conditional`` table) and the fixed-weight
runs of a grid (a ``search=grid`` folder, or an oracle sweep) of the same setting. Per setting and seed:

- ρ: Spearman's rank correlation between the conditional model's dev score at each grid point (on the dev subset
  it ranks with) and that point's final dev score in the grid (its best epoch's, as the grid chose on), over the
  points of the conditional run's batching;
- the conditional model's test score at its λ*, and the paired Δ to the oracle (the fixed weighting with the
  best mean dev over the seeds, both batchings, as :mod:`experiments.frontier` takes it), in points;
- the grid's own run at λ* (what ``search=conditional``'s fixed run trains), and the λ* itself.

Runs of the method's control (``model.net.condition.enabled=false``: the same random weights, no conditioning)
are listed beside it.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.frontier import recorded_points, setting_of
from experiments.report import FIXED_CLASSES as FIXED
from experiments.report import collect
from experiments.stats import interval, spearman
from src.search.strategies import WEIGHT, canonical, point_key


def _table_key(weights: dict[str, float], batching: str) -> str:
    return point_key(canonical({**{WEIGHT + t: float(w) for t, w in weights.items()}, "batching": batching}))


def rankings(roots: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Per setting: the oracle, and per conditional run its ρ against the grid and its scores."""
    runs: list[dict[str, Any]] = []
    for root in roots:
        runs += collect(Path(root))[0]
    by_setting: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_setting[setting_of(r)].append(r)
    out = {}
    for setting, rs in sorted(by_setting.items()):
        conditional = [r for r in rs if r.get("conditional") is not None]
        if not conditional:
            continue
        auxiliaries = conditional[0]["tasks"][1:]
        seeds = sorted({r["seed"] for r in rs if r.get("method") in FIXED})
        grid = {
            s: recorded_points([r for r in rs if r["seed"] == s and len(r["tasks"]) >= 1], auxiliaries) for s in seeds
        }
        common = set.intersection(*(set(g) for g in grid.values())) if grid else set()
        if len(common) < 3:
            continue
        dev = {k: statistics.fmean(grid[s][k]["target_dev"] for s in seeds) for k in common}
        oracle = max(sorted(common), key=lambda k: dev[k])
        rows = []
        for r in sorted(conditional, key=lambda r: (variant(r), r["seed"])):
            s, record = r["seed"], r["conditional"]
            row: dict[str, Any] = {
                "seed": s,
                "variant": variant(r),
                "conditioned": record.get("conditioned", False),
                "test": r["target_test"],
            }
            if s in grid and oracle in grid[s]:
                row["oracle_test"] = grid[s][oracle]["target_test"]
            if record.get("conditioned") and record.get("chosen"):
                pairs, losses = [], []
                for entry in record["table"]:
                    key = _table_key(entry["weights"], r["schedule"])
                    if s in grid and key in grid[s]:
                        pairs.append((entry["dev_subset"], grid[s][key]["target_dev"]))
                        losses.append(-entry["dev_subset_loss"])
                row["points"] = len(pairs)
                row["rho"] = spearman([a for a, _ in pairs], [b for _, b in pairs])
                row["rho_loss"] = spearman(losses, [b for _, b in pairs])
                row["spread"] = max(a for a, _ in pairs) - min(a for a, _ in pairs) if pairs else None
                row["chosen"] = record["chosen"]
                fixed = grid.get(s, {}).get(_table_key(record["chosen"], r["schedule"]))
                row["fixed_test"] = fixed["target_test"] if fixed else None
                row["scoring_runs"] = record.get("runs")
            rows.append(row)
        out[setting] = {"oracle": oracle, "grid_points": len(common), "rows": rows}
    return out


def variant(r: dict[str, Any]) -> str:
    """The recipe: the options a run changed beyond the space (``defaults``, or ``control`` without conditioning)."""
    if not (r.get("conditional") or {}).get("conditioned"):
        return "control (no conditioning)"
    changed = [
        o.split(".", 1)[1] if o.startswith("method.") else o.removeprefix("model.net.")
        for o in r.get("overrides", [])
        if o.startswith(("method.", "model.net.condition")) and not o.startswith("method.space.")
    ]
    return ", ".join(sorted(changed)) or "defaults"


def _delta(rows: list[dict], key: str) -> str:
    diffs = [100 * (r[key] - r["oracle_test"]) for r in rows if r.get(key) is not None and "oracle_test" in r]
    mean, half = interval(diffs)
    return f"{mean:+.2f} ± {half:.2f} ({len(diffs)} seeds)" if diffs else "–"


def write(tables: dict[str, dict[str, Any]]) -> str:
    lines = []
    for setting, t in tables.items():
        lines += [
            f"## {setting}",
            "",
            f"Oracle: `{t['oracle']}` (best mean dev of {t['grid_points']} grid points).",
            "",
        ]
        lines.append(
            "| run | seed | ρ with the grid (score; −loss) | points | dev spread (points) | λ* | test at λ* | Δ oracle "
            "| grid's fixed run at λ*: test | scoring (runs) |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in t["rows"]:
            name = r["variant"]
            delta = 100 * (r["test"] - r["oracle_test"]) if "oracle_test" in r else float("nan")
            chosen = ", ".join(f"{k} {v:g}" for k, v in (r.get("chosen") or {}).items()) or "–"
            rho = f"{r['rho']:.2f}; {r['rho_loss']:.2f}" if "rho" in r else "–"
            spread = f"{100 * r['spread']:.2f}" if r.get("spread") is not None else "–"
            fixed = f"{r['fixed_test']:.4f}" if r.get("fixed_test") is not None else "–"
            scoring = f"{r['scoring_runs']:.3f}" if r.get("scoring_runs") is not None else "–"
            lines.append(
                f"| {name} | {r['seed']} | {rho} | {r.get('points', '–')} | {spread} | {chosen} | {r['test']:.4f} | "
                f"{delta:+.2f} | {fixed} | {scoring} |"
            )
        lines.append("")
        for name in dict.fromkeys(r["variant"] for r in t["rows"]):
            rows = [r for r in t["rows"] if r["variant"] == name]
            line = f"- **{name}**: the model at λ*, Δ to the oracle {_delta(rows, 'test')}"
            if rhos := [r["rho"] for r in rows if "rho" in r]:
                losses = [r["rho_loss"] for r in rows]
                line += (
                    f"; ρ mean {statistics.fmean(rhos):.2f} (min {min(rhos):.2f}, max {max(rhos):.2f}), by −loss "
                    f"{statistics.fmean(losses):.2f}; the grid's fixed run at λ*: Δ {_delta(rows, 'fixed_test')}"
                )
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="write the tables here (markdown) as well")
    args = parser.parse_args(argv)
    text = write(rankings(args.dirs))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
