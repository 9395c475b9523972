"""Turn a multirun folder into tables (mean ± std over seeds) and plots of the task weights over epochs.

    python -m experiments.report logs/multiruns/<sweep> [more folders ...] [--out DIR]

Every ``results.json`` below the folders is read. A run folder (one with Hydra's ``.hydra/``) whose
results.json is missing or unreadable is listed as such in the report, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from experiments.stats import interval, paired_diffs

METHOD_ORDER = [  # fixed weightings, general multitask methods, target-aware ones, αVIL, the conditional model
    "single_task",
    "static",
    "uniform",
    "post_train",
    "uncertainty",
    "pcgrad",
    "upgrad",
    "gradnorm",
    "diw",
    "gcs",
    "ol_aux",
    "hydalearn",
    "slgrad",
    "auto_lambda",
    "forkmerge",
    "alphavil",
    "conditional",
]


def collect(root: Path) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """Readable results, and (folder, reason) for run folders without usable results."""
    results, problems = [], []
    run_dirs = {p.parent for p in root.rglob(".hydra")} | {p.parent for p in root.rglob("results.json")}
    for run in sorted(run_dirs):
        path = run / "results.json"
        if not path.exists():
            problems.append((run, "no results.json (the run failed or is still running)"))
            continue
        try:
            r = json.loads(path.read_text())
            for key in ("target", "method", "target_test", "target_dev", "seed"):
                r[key]  # noqa: B018  (a KeyError marks the file as corrupt)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            problems.append((run, f"corrupt results.json ({type(e).__name__}: {e})"))
            continue
        if (run / "failed.json").exists():  # a search's trial that crashed: its own search does not count it
            problems.append((run, "its search recorded this trial as failed (failed.json)"))
            continue
        if r["target_test"] is None:
            problems.append(
                (run, "no test score: a search's trial stopped before the full run, or a run with test=false")
            )
            continue
        if bad := [k for k in ("target_test", "target_dev") if not _score(r[k])]:
            problems.append((run, f"{bad[0]} is {r[bad[0]]!r}, not a finite number: left out of every mean"))
            continue
        r["_dir"] = str(run.relative_to(root))
        results.append(r)
    return results, problems


def _score(value: Any) -> bool:
    """A score a mean can take: a finite number (a test that did not run is ``None`` and is allowed)."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value))


def deduplicated(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Each run once: a copy of a run (the same recorded configuration and seed, a folder given twice) is left
    out, named with the run it repeats."""
    kept: dict[str, dict[str, Any]] = {}
    dropped = []
    for r in results:
        record = r.get("run_record") or {"method": r["method"], "overrides": r.get("overrides"), "tasks": r["tasks"]}
        key = json.dumps([record, r["seed"], r.get("task_config")], sort_keys=True, default=str)
        if key in kept:
            dropped.append((r["_dir"], f"a copy of {kept[key]['_dir']} (the same configuration and seed)"))
        else:
            kept[key] = r
    return list(kept.values()), dropped


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def method_key(r: dict[str, Any]) -> str:
    """The method, with its option overrides and its batching: variants and Optuna trials get rows of their own.

    Fixed weights of 1 for every task are uniform, whichever config ran them (the oracle grid's weight 1). A
    method that follows ``task.batching`` is named with it (``uniform · sampled``): the same rule on other
    steps is another row. Runs with the relatedness probe are ``· probed``: they repeat their method's seeds; runs
    with a precision override are named with the precision they ran at (``single_task · 32-true``).
    """
    name = r.get("method_choice") or r["method"]
    overrides = r.get("overrides", [])
    options = sorted(_short(o.removeprefix("method.")) for o in overrides if o.startswith("method."))
    # a conditional model's own options (its control: condition.enabled=false) make rows of their own
    options += sorted(_short(o.removeprefix("model.net.")) for o in overrides if o.startswith("model.net.condition."))
    if name == "static" and r.get("weights") and all(w == 1.0 for w in r["weights"].values()):
        name, options = "uniform", []
    key = f"{name} ({', '.join(options)})" if options else name
    key = f"{key} · {r['schedule']}" if r.get("schedule") in ("mixed", "sampled", "matched") else key
    precision = [o.partition("=")[2] for o in overrides if o.startswith("trainer.precision=")]
    key = f"{key} · {r.get('precision') or precision[0]}" if precision else key  # float32 against bf16: own rows
    return f"{key} · probed" if r.get("relatedness") else key  # callbacks=relatedness: a row of its own


def _short(override: str) -> str:
    """``alpha_lr=0.2160082074140204`` -> ``alpha_lr=0.216``: Optuna's values, readable in a table."""
    key, _, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:  # a word (features=hidden+loss) stays as written
        return override
    return override if value.lstrip("-").isdigit() else f"{key}={number:.3g}"  # integers stay exact


def method_order(key: str) -> tuple[int, str]:
    base = key.split(" ", 1)[0]
    return METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), key


def target_key(r: dict[str, Any]) -> str:
    """The setting: the task config's name with the tasks trained and their training-set sizes (the target first),
    so two settings made from one config with other auxiliaries or caps are two tables."""
    name = r.get("task_config") or r["target"]
    sizes = r.get("train_examples") or {}
    tasks = r.get("tasks") or [r["target"]]
    return f"{name}: " + " + ".join(f"{t} {sizes[t]:,}" if t in sizes else t for t in tasks)


def short_name(setting: str) -> str:
    """A setting's task config name (``target_key`` without its tasks)."""
    return setting.split(": ", 1)[0]


def budget_label(r: dict[str, Any]) -> str:
    """The budget a run trained at (``equal``, ``fraction 0.5``, ...), and its dev split's size."""
    budget = r.get("budget")
    if not budget:
        return "each method's own budget (runs from before the budget existed)"
    rule = budget["rule"]
    label = f"{rule} {budget[rule]:g}" if rule in budget else rule
    if rule == "counts":
        label += " (" + ", ".join(f"{t} {n:,}" for t, n in list(budget["per_epoch"].items())[1:]) + ")"
    return f"budget {label}, dev {r['dev_examples']:,}" if "dev_examples" in r else f"budget {label}"


def group_tables(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """Runs by table (setting, budget) and row (method key).

    Single-task training draws no auxiliary examples, so its runs join every budget's table of their setting
    (and dev size): it is the fixed weighting "every auxiliary at 0" at any budget.
    """
    out: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    single = [r for r in results if r.get("schedule") == "target"]
    for r in results:
        if r.get("schedule") != "target":
            out[target_key(r), budget_label(r)][method_key(r)].append(r)
    for r in single:
        dev = r.get("dev_examples")
        keys = [k for k in out if k[0] == target_key(r) and (dev is None or k[1].endswith(f"dev {dev:,}"))]
        for key in keys or [(target_key(r), budget_label(r))]:
            out[key][method_key(r)].append(r)
    return out


# fixed weightings, by config name and by the class name results.json records: the oracle is the best of them on
# dev (report.py, frontier.py, transfer.py and conditional.py all read these)
FIXED = ("single_task", "uniform", "static")
FIXED_CLASSES = ("SingleTask", "Uniform", "Static")


def is_uniform(r: dict[str, Any]) -> bool:
    """Every task at weight 1: method=uniform, or a fixed weighting (a grid's point) that gives every task 1."""
    weights = r.get("weights") or {}
    return (
        r.get("method") == "Uniform" or r.get("method") == "Static" and bool(weights) and set(weights.values()) == {1.0}
    )


def paired(runs: list[dict], reference: list[dict]) -> str:
    """Mean paired difference of the target test score to ``reference`` over shared seeds, in points, ± its 95%
    t-interval."""
    diffs = [100 * d for d in paired_diffs(runs, reference)]  # in points, as the frontier and transfer reports
    if not diffs:
        return "–"
    mean, half = interval(diffs)
    if len(diffs) < 2:
        return f"{mean:+.2f} (n=1)"
    return f"{mean:+.2f} ± {half:.2f}"


def is_single_task(key: str) -> bool:
    """Single-task's plain row, or its row at a precision override (``single_task · 32-true``); not a variant."""
    return key.split(" · ", 1)[0] == "single_task" and not key.endswith(" · probed")


def single_reference(method: str, runs: list[dict], methods: dict[str, list[dict]]) -> list[dict]:
    """The single-task runs a row's Δ vs single_task pairs with: for each run, single-task's at its seed and, where
    single-task ran at it, its precision. Single-task at a precision override is paired with its plain row (float32
    against bf16); the plain row with nothing."""
    if is_single_task(method):
        return methods.get("single_task", []) if method != "single_task" else []
    return at_precision(runs, [r for key, rs in methods.items() if is_single_task(key) for r in rs])


def at_precision(runs: list[dict], reference: list[dict]) -> list[dict]:
    """For each run, the reference run it is paired with: the same seed, at the same precision where the reference
    ran at it (float32 single-task beside bf16 in one table), else at the other."""
    out = []
    for r in runs:
        at_seed = [q for q in reference if q["seed"] == r["seed"]]
        same = [q for q in at_seed if q.get("precision") == r.get("precision")]
        out += (same or at_seed)[:1]
    return out


def precisions(methods: dict[str, list[dict]]) -> Counter:
    """Runs per precision they ran at (``trainer=auto`` resolves to bf16 or float32 by the CPU)."""
    return Counter(r["precision"] for runs in methods.values() for r in runs if r.get("precision"))


def oracle(methods: dict[str, list[dict]]) -> str | None:
    """The fixed weighting (static, uniform, single-task) with the best mean target *dev* score.

    A table holds one budget, so the oracle is the best fixed weighting at the budget of every row it is
    compared with, under either batching.
    """
    fixed = {m: [r["target_dev"] for r in methods[m]] for m in methods if m.split(" ", 1)[0] in FIXED}
    return best_on_dev(fixed)


def best_on_dev(devs: dict[str, list[float]]) -> str | None:
    """The oracle rule every report shares (report, frontier, transfer): the candidate with the best mean dev score
    over its seeds; ties to the first by name."""
    return max(sorted(devs), key=lambda k: mean_std(devs[k])[0], default=None)


def reference(methods: dict[str, list[dict]], best_fixed: str | None) -> str | None:
    """The row spending is compared with: uniform on sampled batches (αVIL's examples and steps), else the oracle."""
    if "uniform · sampled" in methods:
        return "uniform · sampled"
    return best_fixed if best_fixed and best_fixed != "single_task" else next(iter(methods), None)


def spending(runs: list[dict]) -> dict[str, float] | None:
    """Mean optimizer steps, training examples (all tasks), forward and backward passes and dev examples used."""
    if not all("optimizer_steps" in r for r in runs):
        return None
    return {
        "steps": statistics.fmean(r["optimizer_steps"] for r in runs),
        "examples": statistics.fmean(sum(r["examples_seen"].values()) for r in runs),
        "forward": statistics.fmean(r["passes"]["forward"] for r in runs),
        "backward": statistics.fmean(r["passes"]["backward"] for r in runs),
        "dev": statistics.fmean(r["dev_examples_used"] for r in runs),
    }


def spent_cells(spent: dict[str, float] | None) -> str:
    """The optimizer-steps, passes and dev-examples cells of a row."""
    if spent is None:
        return "– | – | –"
    return f"{spent['steps']:,.0f} | {spent['forward']:,.0f} / {spent['backward']:,.0f} | {spent['dev']:,.0f}"


def off_budget(spent: dict[str, float] | None, ref: dict[str, float] | None, tolerance: float = 0.05) -> str:
    """What differs by more than ``tolerance`` from the reference row: ``examples``, ``steps``, both, or ''."""
    if spent is None or ref is None:
        return ""
    off = [k for k in ("examples", "steps") if abs(spent[k] - ref[k]) > tolerance * max(ref[k], 1)]
    return " and ".join(off)


def tables(results: list[dict[str, Any]]) -> str:
    out = []
    for (target, budget), methods in sorted(group_tables(results).items()):
        any_run = next(iter(methods.values()))[0]
        out.append(f"### {target}, {budget} (target `{any_run['target']}`, metric: {any_run['target_metric']})\n")
        best_fixed = oracle(methods)
        ran = precisions(methods)
        mixed = ran if len(ran) > 1 else None  # more than one precision: each row says its own
        if best_fixed:
            out.append(
                f"Oracle: `{best_fixed}`, the fixed weighting with the best mean target dev score at this budget "
                f"({len(methods[best_fixed])} seeds); chosen on dev, scored on test.\n"
            )
        ref = reference(methods, best_fixed)
        ref_spent = spending(methods[ref]) if ref else None
        rows = []
        for method in sorted(methods, key=method_order):
            runs = sorted(methods[method], key=lambda r: r["seed"])
            test, test_sd = mean_std([r["target_test"] for r in runs])
            dev, dev_sd = mean_std([r["target_dev"] for r in runs])
            sec, _ = mean_std([r.get("mean_epoch_seconds") for r in runs])
            memory = [r["peak_memory_mb"] for r in runs if r.get("peak_memory_scope") == "training"]
            spent = spending(runs)
            off = off_budget(spent, ref_spent) if method != ref else ""
            ran_at = sorted({r["precision"] for r in runs if r.get("precision")})
            shown = f"{method} [{', '.join(ran_at)}]" if mixed and not method.endswith(tuple(ran_at)) else method
            rows.append(
                {
                    "name": method,
                    "method": shown + (" †" if off else "") + (" **(oracle)**" if method == best_fixed else ""),
                    "test": test,
                    "cell": f"{test:.4f} ± " + ("n/a (one seed)" if math.isnan(test_sd) else f"{test_sd:.4f}"),
                    "seeds": ", ".join(f"{r['target_test']:.4f}" for r in runs),
                    "single": paired(runs, ref_runs) if (ref_runs := single_reference(method, runs, methods)) else "–",
                    "oracle": paired(runs, methods[best_fixed]) if best_fixed and method != best_fixed else "–",
                    "dev": f"{dev:.4f}" + ("" if math.isnan(dev_sd) else f" ± {dev_sd:.4f}"),
                    "sec": f"{sec:.1f}",
                    "memory": f"{statistics.fmean(memory):,.0f}" if len(memory) == len(runs) else "–",
                    "seen": examples_seen(runs),
                    "spent": spent_cells(spent),
                    "off": off,
                    "weights": final_weights(runs),
                }
            )
        best = max((r["test"] for r in rows if not math.isnan(r["test"])), default=math.nan)
        out.append(
            "| method | target test (mean ± std) | per seed | Δ vs single_task (points, 95% CI) | "
            "Δ vs oracle (points, 95% CI) | target dev | examples seen (mean) | optimizer steps | passes fwd / bwd | "
            "dev examples used | s / epoch | peak MB | final weights (mean) |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            cell = f"**{r['cell']}**" if r["test"] == best else r["cell"]
            out.append(
                f"| {r['method']} | {cell} | {r['seeds']} | {r['single']} | {r['oracle']} | {r['dev']} | "
                f"{r['seen']} | {r['spent']} | {r['sec']} | {r['memory']} | {r['weights']} |"
            )
        out.append("")
        out.append(
            "Δ: the paired difference of the target test score over the seeds both rows ran, in points (× 100; "
            "mean ± half-width of the 95% t-interval). Examples seen: training examples each task's loss was taken "
            "on, over the whole run (dev batches excluded). Passes: the model's forward and backward passes over a "
            "batch in training (α-steps, look-aheads, trial steps and merge evaluations included). Peak MB: each "
            "run's peak memory in training (the GPU's allocated memory on CUDA, else the process's peak resident "
            "size), mean over seeds; – where a run's peak covers more than its training (`peak_memory_scope`)."
        )
        if mixed:
            out.append(
                "Precision: this table holds runs at more than one ("
                + ", ".join(f"{p}: {n} runs" for p, n in sorted(mixed.items()))
                + "); each row's is in brackets. Δ vs single_task pairs each run with the single-task run of its "
                "seed at its precision where there is one; Δ vs oracle pairs across precisions where they differ."
            )
        if marked := [r for r in rows if r["off"]]:
            out.append(
                f"† spends more than 5% more or less than the reference row `{ref}`: "
                + "; ".join(f"{r['name']}: {r['off']}" for r in marked)
                + "."
            )
        out.append("")
        out.append(settings(methods))
    return "\n".join(out)


def examples_seen(runs: list[dict[str, Any]]) -> str:
    if not all(r.get("examples_seen") for r in runs):
        return "–"
    names = runs[0]["tasks"]
    return ", ".join(f"{t}={statistics.fmean(r['examples_seen'][t] for r in runs):,.0f}" for t in names)


def final_weights(runs: list[dict[str, Any]]) -> str:
    names = runs[0]["tasks"]
    return ", ".join(f"{t}={statistics.fmean(r['weights'][t] for r in runs):.2f}" for t in names)


def settings(methods: dict[str, list[dict]]) -> str:
    runs = [r for rs in methods.values() for r in rs]
    epochs = sorted({r.get("epochs") for r in runs if r.get("epochs") is not None})
    seeds = sorted({r["seed"] for r in runs})
    sizes = sorted({json.dumps(r.get("train_examples", {}), sort_keys=True) for r in runs})
    overrides = sorted({o for r in runs for o in r.get("overrides", []) if not o.startswith(("seed=", "method"))})
    lines = [
        f"Epochs: {', '.join(map(str, epochs))}; seeds: {', '.join(map(str, seeds))}.",
        f"Training examples per task: {'; '.join(sizes)}.",
    ]
    if overrides:
        lines.append("Overrides: " + ", ".join(f"`{o}`" for o in overrides) + ".")
    return "\n".join(lines) + "\n"


def plot_weights(results: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per target: each method's task weights over epochs (mean over seeds, min–max band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by_target = {
        key: {m: [r for r in runs if r.get("weight_history")] for m, runs in methods.items()}
        for key, methods in group_tables(results).items()
    }
    paths = []
    for (setting, budget), methods in sorted(by_target.items()):
        methods = {m: runs for m, runs in methods.items() if runs}
        if not methods:
            continue
        name = short_name(setting)  # the config's name, unless two settings share it
        name = name if len({s_ for s_, _ in by_target if short_name(s_) == name}) == 1 else _slug(setting)
        target = name if len({b for s_, b in by_target if s_ == setting}) == 1 else f"{name}_{_slug(budget)}"
        names = sorted(methods, key=method_order)
        cols = min(len(names), 4)  # method variants (tuned runs, Optuna trials) wrap onto more rows
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False, sharey=True)
        for ax in axes.flat[len(names) :]:
            ax.set_visible(False)
        for ax, method in zip(axes.flat, names):
            runs = methods[method]
            for task in runs[0]["tasks"]:
                epochs = min(len(r["weight_history"]) for r in runs)
                series = [[r["weight_history"][e][task] for r in runs] for e in range(epochs)]
                xs = list(range(1, epochs + 1))
                ax.plot(xs, [statistics.fmean(s) for s in series], marker="o", ms=3, label=task)
                ax.fill_between(xs, [min(s) for s in series], [max(s) for s in series], alpha=0.2)
            ax.set_title(f"{method} (n={len(runs)})", fontsize=7 if len(method) > 30 else None)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        for row in axes:
            row[0].set_ylabel("task weight")
        axes[0][cols - 1].legend(fontsize=8)
        fig.suptitle(f"{target}: task weights over epochs (mean over seeds, band = min–max)")
        fig.tight_layout()
        path = out / f"weights_{target}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def report(roots: Path | list[Path], out: Path | None = None) -> Path:
    """Write ``report.md`` and the weight plots for the runs below ``roots``; returns the report's path."""
    roots = [roots] if isinstance(roots, Path) else roots
    out = out or roots[0] / "report"
    results, problems = [], []
    for root in roots:
        found, missing = collect(root)
        for r in found:
            r["_dir"] = str(root / r["_dir"]) if len(roots) > 1 else r["_dir"]
        results += found
        problems += [(root, p, why) for p, why in missing]
    if not results and not problems:  # no report is written into a folder that holds no run
        raise FileNotFoundError(
            f"no run below {', '.join(map(str, roots))} (no results.json, no .hydra): nothing to report"
        )
    out.mkdir(parents=True, exist_ok=True)
    results, copies = deduplicated(results)
    parts = [f"# Report: {', '.join(map(str, roots))}\n", f"{len(results)} runs with results.\n"]
    if problems or copies:
        parts.append("## Runs left out\n")
        parts += [f"- `{p.relative_to(root)}`: {why}" for root, p, why in problems]
        parts += [f"- `{d}`: {why}" for d, why in copies]
        parts.append("")
    if flagged := [r for r in results if r.get("warnings")]:  # included in the tables, but read with care
        parts.append("## Runs flagged while training\n")
        parts += [f"- `{r['_dir']}`: {'; '.join(r['warnings'])}" for r in flagged]
        parts.append("")
    parts.append("## Target test score by method\n")
    parts.append("Test score at the epoch with the best target dev score; best mean in bold.\n")
    parts.append(tables(results) if results else "No results.\n")
    plots = plot_weights(results, out) if results else []
    if plots:
        parts.append("## Task weights over epochs\n")
        parts += [f"![{p.stem}]({p.name})\n" for p in plots]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="multirun folders (searched recursively for results.json)")
    parser.add_argument("--out", type=Path, default=None, help="where report.md and the PNGs go (default DIR/report)")
    args = parser.parse_args(argv)
    for d in args.dirs:
        if not d.is_dir():
            parser.error(f"{d} is not a folder")
    try:
        print(report(args.dirs, args.out).read_text())
    except FileNotFoundError as e:
        parser.exit(1, f"report: {e}\n")


if __name__ == "__main__":
    main()
