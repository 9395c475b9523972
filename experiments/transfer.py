"""Transfer report: does each method's weighting say which auxiliaries help the target?

For every table of ``experiments.report`` (a setting at one budget) and every auxiliary a, the *measured effect*
comes from the fixed-weight oracle grid: the oracle is the fixed weighting with the best mean target dev score;
a's effect is the paired difference of the target test score between the grid point that changes only a's
weight (the others held at the oracle's, batching the oracle's) and the point with a's weight at 0: at a's best
weight on dev (``best``) and at weight 1 (``at 1``), each with its 95% t-interval over the seeds both ran. With
one auxiliary the reference is single-task training.

Beside it, what each learning method's weights say: a's mean weight over the last half of training relative to
the target's (the ratio w_a / w_target, per epoch, then averaged over epochs and seeds) and its rank among the
auxiliaries; and what each cheap estimate of a uniform run with the relatedness probe says
(``callbacks=relatedness``: look-ahead affinity, gradient cosine, first-order influence). Per method or estimate,
the Spearman rank correlation between its values and the measured effects (at the best weight) over every
(setting, auxiliary) point, and for an estimate, whose sign is a claim, the share of points where it agrees
with the effect's. Run by run, where a setting has two auxiliaries or more: whether each run's weights put them in
the order of their measured effects, level them (within 1%) or reverse a pair. One scatter panel per method:
measured effect against learned weight. Post-training's and
the fixed weightings' weights are set, not learned, and are left out.

    python -m experiments.transfer DIR [DIR ...] [--out FOLDER]       (make transfer DIR="...")
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from experiments.report import FIXED, collect, group_tables, mean_std, method_order, oracle, short_name
from experiments.stats import interval, paired_diffs, spearman
from src.record import learned_weights

ESTIMATES = ("lookahead", "cosine", "influence")
NOT_A_CLAIM = (*FIXED, "post_train")  # weights set by hand or by a schedule (post-training's phases), not learned
LEVEL = 0.01  # two learned weights within 1% of each other (relative) do not order their auxiliaries


def fixed_weights(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The auxiliaries' weights of a fixed-weighting row (0 for single-task)."""
    r = runs[0]
    if r.get("schedule") == "target":
        return {t: 0.0 for t in r["tasks"][1:]}
    return {t: float(r["weights"][t]) for t in r["tasks"][1:]}


def batching(key: str) -> str | None:
    return key.rsplit(" · ", 1)[1] if " · " in key else None


def measured_effects(methods: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Per auxiliary: the best weight's and weight 1's paired effect on the target test score (see module doc)."""
    best = oracle(methods)
    if best is None:
        return {}
    fixed = [k for k in methods if k.split(" ", 1)[0] in FIXED]
    if batching(best) is None:  # single-task is the oracle: the grid's batching is that of its best other point
        others = [k for k in fixed if batching(k)]
        best_other = max(others, key=lambda k: mean_std([r["target_dev"] for r in methods[k]])[0], default=None)
        home_batching = batching(best_other) if best_other else None
    else:
        home_batching = batching(best)
    grid = {key: fixed_weights(methods[key]) for key in fixed if batching(key) in (home_batching, None)}
    home = grid[best]
    out = {}
    for aux in home:

        def others_match(w: dict[str, float], aux: str = aux) -> bool:
            return all(math.isclose(w[t], home[t]) for t in home if t != aux)

        line = {key: w[aux] for key, w in grid.items() if others_match(w)}
        zero = [k for k, w in line.items() if w == 0]
        helped = {k: w for k, w in line.items() if w > 0}
        if not zero or not helped:
            out[aux] = {"reference": zero[0] if zero else None}
            continue
        ref = methods[zero[0]]
        top = max(helped, key=lambda k: mean_std([r["target_dev"] for r in methods[k]])[0])
        one = next((k for k, w in helped.items() if math.isclose(w, 1.0)), None)
        out[aux] = {
            "reference": zero[0],
            "best_key": top,
            "best_weight": helped[top],
            "best": interval(paired_diffs(methods[top], ref)),
            "at_1": interval(paired_diffs(methods[one], ref)) if one else (math.nan, math.nan),
        }
    return out


def learned_weight(runs: list[dict[str, Any]], aux: str) -> float:
    """Mean over seeds of the mean of w_aux / w_target over the last half of each run's epochs."""
    per_run = [w[aux] for r in runs if r.get("weight_history") and aux in (w := learned_weights(r))]
    return statistics.fmean(per_run) if per_run else math.nan


def estimates(methods: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """The probe's estimates per auxiliary, averaged over the probed runs of the table."""
    probed = [r for runs in methods.values() for r in runs if r.get("relatedness", {}).get("probed_steps")]
    out: dict[str, dict[str, float]] = {}
    for name in ESTIMATES:
        for aux in probed[0]["tasks"][1:] if probed else []:
            values = [r["relatedness"][name][aux] for r in probed if aux in r["relatedness"][name]]
            if values:
                out.setdefault(f"probe: {name}", {})[aux] = statistics.fmean(values)
    return out


def learning(methods: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The table's rows whose weights are learned (a weight history, neither fixed nor post-training)."""
    return {
        key: runs
        for key, runs in methods.items()
        if key.split(" ", 1)[0] not in NOT_A_CLAIM and any(r.get("weight_history") for r in runs)
    }


def points(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per (table, auxiliary): the measured effect and every method's and estimate's value."""
    out = []
    for (setting, budget), methods in sorted(group_tables(results).items()):
        effects = measured_effects(methods)
        probe = estimates(methods)
        learned = learning(methods)
        for aux, effect in effects.items():
            values = {key: learned_weight(runs, aux) for key, runs in learned.items()}
            values.update({name: v[aux] for name, v in probe.items() if aux in v})
            out.append({"setting": short_name(setting), "budget": budget, "aux": aux, **effect, "values": values})
    return out


def order(weights: dict[str, float], effects: dict[str, float]) -> str | None:
    """One run's verdict on the auxiliaries' order: ``agrees`` when its weights (w_aux / w_target) put every pair in
    the order of their measured effects, ``against`` when they reverse a pair, else ``level`` (a pair within
    ``LEVEL`` of each other). ``None`` where no pair has two distinct measured effects."""
    verdicts = set()
    ranked = sorted((a for a in effects if not math.isnan(effects[a]) and a in weights), key=effects.__getitem__)
    for low, high in itertools.combinations(ranked, 2):  # effects[low] <= effects[high]
        if effects[low] == effects[high]:
            continue
        w_low, w_high = weights[low], weights[high]
        if abs(w_high - w_low) <= LEVEL * max(abs(w_high), abs(w_low)):
            verdicts.add("level")
        else:
            verdicts.add("agrees" if w_high > w_low else "against")
    for verdict in ("against", "level", "agrees"):
        if verdict in verdicts:
            return verdict
    return None


def orders(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (table with two auxiliaries or more, learning method): how many of its runs order the auxiliaries as
    their measured effects at the best weight do, level them, or reverse them (``order``, run by run)."""
    out = []
    for (setting, budget), methods in sorted(group_tables(results).items()):
        effects = {aux: e["best"][0] for aux, e in measured_effects(methods).items() if "best" in e}
        if len(effects) < 2:
            continue
        for key, runs in sorted(learning(methods).items(), key=lambda kv: method_order(kv[0])):
            verdicts = [order(learned_weights(r), effects) for r in runs if r.get("weight_history")]
            counts = Counter(v for v in verdicts if v)
            if counts:
                out.append({"setting": short_name(setting), "budget": budget, "method": key, **counts})
    return out


def agreement(pts: list[dict[str, Any]], name: str) -> tuple[float, float, int]:
    """Spearman's ρ with the best-weight effects, the share of sign agreements, and the number of points."""
    usable = [
        p
        for p in pts
        if "best" in p and not math.isnan(p["best"][0]) and not math.isnan(p["values"].get(name, math.nan))
    ]
    xs = [p["best"][0] for p in usable]
    ys = [p["values"][name] for p in usable]
    if not usable:
        return math.nan, math.nan, 0
    # an estimate's sign is a claim (above 0: the auxiliary helps); a method's weights have no zero point
    agree = [(x > 0) == (y > 0) for x, y in zip(xs, ys)] if name.startswith("probe: ") else []
    return spearman(xs, ys), sum(agree) / len(agree) if agree else math.nan, len(usable)


def _fmt(pair: tuple[float, float]) -> str:
    mean, half = pair
    if math.isnan(mean):
        return "–"
    return f"{mean * 100:+.2f}" + ("" if math.isnan(half) else f" ± {half * 100:.2f}")


def transfer_report(roots: list[Path], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for root in roots:
        results += collect(root)[0]
    pts = points(results)
    names = sorted({n for p in pts for n in p["values"]}, key=lambda n: (n.startswith("probe: "), method_order(n)))
    lines = [
        f"# Transfer report: {', '.join(map(str, roots))}\n",
        f"{len(results)} runs, {len(pts)} (setting, auxiliary) points.\n",
    ]
    lines.append("## Measured effect of each auxiliary on the target\n")
    lines.append(
        "Paired Δ of the target test score (points, mean ± 95% t-interval half-width) of the grid point that changes "
        "only this auxiliary's weight, against the same point with its weight at 0 (the others at the oracle's).\n"
    )
    lines.append(
        "| setting | budget | auxiliary | reference | best weight (on dev) | Δ at best weight | Δ at weight 1 |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for p in pts:
        weight = f"{p['best_weight']:g} (`{p['best_key']}`)" if "best" in p else "–"
        lines.append(
            f"| {p['setting']} | {p['budget']} | {p['aux']} | `{p.get('reference') or '–'}` | {weight} | "
            f"{_fmt(p.get('best', (math.nan, math.nan)))} | {_fmt(p.get('at_1', (math.nan, math.nan)))} |"
        )
    lines.append("\n## What each method's weights (and each cheap estimate) say\n")
    lines.append(
        "Learned weight: w_aux / w_target averaged over the last half of training and over the seeds (rank among "
        "the setting's auxiliaries in brackets, 1 = highest). Probe rows: the estimate's mean over the probed steps "
        "of a uniform run with `callbacks=relatedness`.\n"
    )
    header = "| setting | budget | auxiliary | Δ at best weight | " + " | ".join(names) + " |"
    lines += [header, "|" + "---|" * (4 + len(names))]
    for p in pts:
        same = [q for q in pts if q["setting"] == p["setting"] and q["budget"] == p["budget"]]
        cells = []
        for n in names:
            v = p["values"].get(n, math.nan)
            if math.isnan(v):
                cells.append("–")
                continue
            rank = 1 + sum(q["values"].get(n, -math.inf) > v for q in same)
            cells.append(f"{v:.3g} ({rank})" if len(same) > 1 else f"{v:.3g}")
        lines.append(
            f"| {p['setting']} | {p['budget']} | {p['aux']} | {_fmt(p.get('best', (math.nan, math.nan)))} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("\n## Agreement with the measured effects, over every point\n")
    lines.append(
        "Spearman's ρ between the values and the measured effects at the best weight; sign agreement (estimates "
        "only, whose sign is a claim): the share of points where the estimate is above 0 exactly when Δ is.\n"
    )
    lines += ["| method or estimate | points | Spearman ρ | sign agreement |", "|---|---|---|---|"]
    for n in names:
        rho, agree, count = agreement(pts, n)
        rho_cell = "–" if math.isnan(rho) else f"{rho:+.2f}"
        agree_cell = "–" if math.isnan(agree) else f"{agree:.0%}"
        lines.append(f"| {n} | {count} | {rho_cell} | {agree_cell} |")
    ordered = orders(results)
    if ordered:
        lines.append("\n## Run by run: do the weights order the auxiliaries as their measured effects do?\n")
        lines.append(
            "For each run, its learned weights (as above, that run alone) against the measured effects at the best "
            "weight: *agrees* when every pair of auxiliaries is in the effects' order, *against* when a pair is "
            f"reversed, *level* when a pair's weights are within {LEVEL:.0%} of each other and none is reversed.\n"
        )
        lines += ["| setting | budget | method | runs | agrees | level | against |", "|---|---|---|---|---|---|---|"]
        for o in ordered:
            counts = [o.get(v, 0) for v in ("agrees", "level", "against")]
            lines.append(
                f"| {o['setting']} | {o['budget']} | {o['method']} | {sum(counts)} | "
                + " | ".join(map(str, counts))
                + " |"
            )
    plot = plot_transfer(pts, names, out)
    if plot:
        lines += ["", f"![measured effect against learned weight]({plot.name})", ""]
    path = out / "transfer.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_transfer(pts: list[dict[str, Any]], names: list[str], out: Path) -> Path | None:
    """One panel per method or estimate: measured effect (x, with its interval) against its value (y)."""
    names = [n for n in names if agreement(pts, n)[2]]
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    labels = sorted({(p["setting"].removeprefix("multimnist_"), p["aux"]) for p in pts})
    budgets = sorted({p["budget"] for p in pts})
    colors = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    markers = {b: "osD^v<>"[i % 7] for i, b in enumerate(budgets)}
    for ax, name in zip(axes.flat, names):
        for p in pts:
            if "best" not in p or math.isnan(p["values"].get(name, math.nan)):
                continue
            mean, half = p["best"]
            label = (p["setting"].removeprefix("multimnist_"), p["aux"])
            ax.errorbar(
                mean * 100,
                p["values"][name],
                xerr=None if math.isnan(half) else half * 100,
                fmt=markers[p["budget"]],
                color=colors[label],
                ms=5,
                elinewidth=0.8,
            )
        rho, _, count = agreement(pts, name)
        ax.set_title(f"{name} (ρ={rho:+.2f}, n={count})" if not math.isnan(rho) else f"{name} (n={count})", fontsize=8)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("measured effect, Δ test (points)")
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("weight / estimate")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=f"{s}: {a}") for (s, a), c in colors.items()]
    handles += [plt.Line2D([], [], color="grey", marker=m, ls="", label=b) for b, m in markers.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * math.ceil(len(handles) / 4), 1, 1))
    path = out / "transfer.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="multirun folders (searched recursively for results.json)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where transfer.md and transfer.png go (default DIR/transfer)"
    )
    args = parser.parse_args(argv)
    for d in args.dirs:
        if not d.is_dir():
            parser.error(f"{d} is not a folder")
    print(transfer_report(args.dirs, args.out or args.dirs[0] / "transfer").read_text())


if __name__ == "__main__":
    main()
