"""The frontier: target test score (paired Δ to the oracle) against total compute, for every way to pick weights.

    python -m experiments.frontier DIR [DIR ...] [--out FOLDER] [--no-replay] [--grid-batching mixed,sampled]
    make frontier DIR="..." ARGS="..."

Every ``results.json`` and ``search.json`` below the folders is read and sorted into settings (task config,
target, budget, dev size, epochs). Per setting:

- the **oracle**: the grid's fixed weighting (static, uniform or single-task, on the grid's batchings: those of a
  live grid search, else ``--grid-batching``, mixed and sampled) with the best mean target dev score over the seeds;
  chosen on dev, scored on test;
- every **fixed weighting beside the grid** (on a batching the grid does not hold, such as uniform on step-matched
  batches, or a sweep's own uniform beside a live grid search): one run each; not the oracle's candidate;
- every **learned method**: one run each (its extra passes beside it);
- every **live search** (``search.json`` of ``python -m src.search``): its chosen trial's test score at its total
  compute, ``total_runs``;
- every strategy **replayed** on the recorded grid (:mod:`src.search.strategies` on the grid runs' dev histories: what
  the strategy would have chosen and spent, with no training), unless ``--no-replay``;
- the **grid as a best-of-k curve**: the expected test score of the dev-best of k grid points drawn at random
  (exact, over every k-subset), at k runs.

Δ is the paired difference to the oracle's test score over the seeds both have, in points (× 100), with the
half-width of its 95% t-interval. The report also states how well early rankings predict the final one:
Spearman's ρ between the grid points' best dev score after e epochs and after the full run, per seed, averaged.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from math import comb
from pathlib import Path
from typing import Any

from experiments.report import FIXED_CLASSES as FIXED
from experiments.report import best_on_dev, budget_label, collect, method_key, method_order
from experiments.stats import interval, spearman
from src.schema import BATCHINGS, SearchConfig, SpaceConfig
from src.search.registry import label, run_strategy, sampler_and_pruner
from src.search.replay import Replay
from src.search.strategies import WEIGHT, Point, canonical, point_key

# The grid's batchings where no live grid search names the grid: those of the committed searches' spaces. A fixed
# weighting on another batching (uniform on step-matched batches) is a row beside the grid, not a point a replayed
# search could propose, nor the oracle's candidate (the oracle is the best of the grid it costs).
GRID_BATCHINGS = ("mixed", "sampled")

# strategies replayed by default: name → SearchConfig options
REPLAYS: dict[str, dict[str, Any]] = {
    "halving η=3": {"strategy": "halving", "eta": 3},
    "halving η=2": {"strategy": "halving", "eta": 2},
    "halving η=4": {"strategy": "halving", "eta": 4},
    "halving η=3 on 20 random grid points": {"strategy": "halving", "eta": 3, "n_points": 20},
    "hyperband η=3": {"strategy": "hyperband", "eta": 3, "min_epochs": 1},
    "tpe + hyperband pruner, ≤ 2 runs": {"strategy": "tpe", "eta": 3, "max_runs": 2.0},
    "tpe + hyperband pruner, ≤ 3 runs": {"strategy": "tpe", "eta": 3, "max_runs": 3.0},
    # replayed, RegMix's proxies are drawn from the recorded points (the range is the live search's)
    "regmix, 8 proxies": {"strategy": "regmix", "proxies": 8, "space": SpaceConfig(low=0.1, high=3.0)},
    # added after the K = 4 grid's replays of the rows above (dev rankings settle by epoch 5 there, not 1-2):
    # judged on every other setting too, where they were not chosen
    "regmix, 8 proxies of 5 epochs": {
        "strategy": "regmix",
        "proxies": 8,
        "proxy_epochs": 5,
        "space": SpaceConfig(low=0.1, high=3.0),
    },
    "halving η=3 on 9 random grid points from 2 epochs": {
        "strategy": "halving",
        "eta": 3,
        "n_points": 9,
        "min_epochs": 2,
    },
    "hybrid (αVIL's weights)": {"strategy": "hybrid", "source": "alphavil"},
    # the recorded conditional run of the seed (method=conditional), its λ* or its top 3 on the recorded grid
    "conditional, λ* fixed": {"strategy": "conditional", "top": None},
    "conditional + halving on its top 3": {"strategy": "conditional", "top": 3, "eta": 3},
}


def setting_of(r: dict[str, Any]) -> str:
    """A table: task config, target, budget (rule and dev size), epochs."""
    return f"{r.get('task_config') or r['target']} · {budget_label(r)} · {r.get('epochs')} epochs"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _same_setting(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two runs belong to one setting: task config, target, epochs, dev size and budget (a search's points
    may drop auxiliaries, so the tasks trained are not compared)."""
    keys = ("task_config", "target", "epochs", "dev_examples")
    budget = [{k: v for k, v in (r.get("budget") or {}).items() if k not in ("per_epoch", "batching")} for r in (a, b)]
    return all(a.get(k) == b.get(k) for k in keys) and budget[0] == budget[1]


def _same_but_budget(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("task_config", "target", "dev_examples", "epochs")
    return all(a.get(k) == b.get(k) for k in keys)


def recorded_points(runs: Sequence[dict[str, Any]], auxiliaries: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The fixed-weight runs among ``runs`` as points of the weight space: each auxiliary's weight relative to the
    target's (0 where it was not trained on), the batching; a point seen twice keeps its first run."""
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.get("method") in FIXED:
            out.setdefault(point_key(point_of(r, auxiliaries)), r)
    return out


def point_of(r: dict[str, Any], auxiliaries: Sequence[str]) -> Point:
    """A fixed-weight run's point: each auxiliary's weight over the target's, 0 where it was not trained on."""
    weights = r.get("weights") or {}
    target = weights.get(r["target"], 1.0) or 1.0
    alone = r.get("schedule") == "target"
    point: Point = {WEIGHT + t: 0.0 if alone else round(float(weights.get(t, 0.0)) / target, 4) for t in auxiliaries}
    point["batching"] = r.get("schedule")
    return canonical(point)


class RecordedSpace:
    """The weight space of a recorded grid (a :class:`src.search.space.SearchSpace`), for
    :func:`src.search.registry.run_strategy` in replay: its points are the
    recorded ones; a sampler's proposals are drawn from their values (a proposal without a record fails, free)."""

    def __init__(self, points: dict[str, Point], auxiliaries: Sequence[str], seed: int):
        self.points, self.auxiliaries, self.seed = points, list(auxiliaries), seed
        self.config = SpaceConfig(weights=[0.0], batching=["sampled"])  # a hybrid's fixed run: sampled batches
        self.weighted = True

    def grid(self) -> list[Point]:
        """The recorded points in the order a live grid lists them (each auxiliary's weight ascending, then the
        batching, mixed first): pools, subsets and ties then match a live search's."""
        order = {"mixed": 0, "sampled": 1}

        def place(p: Point) -> tuple:
            return (*(p.get(WEIGHT + t, 0.0) for t in self.auxiliaries), order.get(p.get("batching", ""), -1))

        return sorted(self.points.values(), key=place)

    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        out: dict[str, Any] = {}
        for t in self.auxiliaries:
            out[WEIGHT + t] = CategoricalDistribution(sorted({p.get(WEIGHT + t, 0.0) for p in self.points.values()}))
        batchings = sorted({p["batching"] for p in self.points.values() if "batching" in p})
        out["batching"] = CategoricalDistribution(batchings or ["sampled"])
        return out

    def to_point(self, params: dict[str, Any]) -> Point:
        return canonical(dict(params))

    def sample(self, n: int, seed_offset: int = 0) -> list[Point]:
        return random.Random(self.seed + seed_offset).sample(self.grid(), min(n, len(self.points)))


class ReplayWithSources(Replay):
    """A replay whose hybrid source runs are the recorded runs of the learned method (its cost: one run)."""

    def __init__(self, histories, full_epochs, sources: dict[str, dict[str, Any]], recorded: list[Point], snap: bool):
        super().__init__(histories, full_epochs)
        self.sources, self.source_cost, self.recorded, self.snap = sources, 0.0, recorded, snap

    def run_method(self, method: str, extra: Sequence[str] = (), key: str | None = None) -> dict[str, Any] | None:
        source = self.sources.get(method)
        self.source_cost = run_cost(source or {})
        return source

    def advance(self, points, epochs):
        # a hybrid's fixed point lands between grid values: it is replayed at the nearest recorded point; any
        # other point without a record fails, at no cost
        return super().advance([self.nearest(p) for p in points] if self.snap else points, epochs)

    def nearest(self, point: Point) -> Point:
        key = point_key(point)
        if key in self.histories or not self.recorded:
            return point

        def distance(q: Point) -> float:
            keys = {k for k in (*point, *q) if k.startswith(WEIGHT)}
            d = sum(abs(math.log1p(point.get(k, 0.0)) - math.log1p(q.get(k, 0.0))) for k in keys)
            return d + (0 if q.get("batching", point.get("batching")) == point.get("batching") else 0.01)

        return min(self.recorded, key=distance)

    def cost(self) -> float:
        return super().cost() + self.source_cost


def _plain(r: dict[str, Any]) -> bool:
    """A learned method's run with its own defaults (a hybrid's or a conditional search's source in a replay): no
    option of the method changed but the weight space, nor the model's conditioning (an ablation, a control)."""
    changed = [
        o
        for o in r.get("overrides") or []
        if o.startswith(("method.", "model.net.condition")) and not o.startswith("method.space.")
    ]
    return r.get("method") not in FIXED and not changed


def run_cost(r: dict[str, Any]) -> float:
    """A learned method's run in full runs: one, and a conditional run's scoring of the weightings after it."""
    return 1.0 + float((r.get("conditional") or {}).get("runs") or 0.0)


def best_of_k(points: Sequence[tuple[float, float]], k: int) -> float:
    """Expected test score of the dev-best among k of ``points`` (dev, test) drawn at random without replacement."""
    order = sorted(points, key=lambda p: -p[0])
    n = len(order)
    return sum(comb(n - 1 - i, k - 1) / comb(n, k) * order[i][1] for i in range(n - k + 1))


def frontier(
    roots: Sequence[Path], replay: bool = True, batchings: Sequence[str] = GRID_BATCHINGS
) -> dict[str, dict[str, Any]]:
    """Per setting: rows (name → per-seed test scores and costs) and the early-ranking correlations."""
    runs: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    for root in roots:
        found, _ = collect(Path(root))
        for r in found:
            r["_path"] = str(Path(root) / r["_dir"])
        runs += found
        for path in sorted(Path(root).rglob("search.json")):
            s = json.loads(path.read_text())
            s["_path"] = str(path.parent)
            searches.append(s)
    by_setting: dict[str, list[dict]] = defaultdict(list)
    alone = []
    for r in runs:
        search = next((s for s in searches if r["_path"].startswith(s["_path"] + "/")), None)
        full_run = (
            len(r.get("dev_history") or []) == (search or {}).get("full_epochs") and r.get("target_test") is not None
        )
        if search is not None and not (r.get("method") in FIXED and full_run):
            continue  # a search's stopped trials and source runs belong to its own cost, not to the grid
        (alone if r.get("schedule") == "target" else by_setting[setting_of(r)]).append(r)
    for r in alone:  # single-task draws no auxiliary examples: it joins every budget of its setting (and dev size)
        same = [k for k, rs in by_setting.items() if _same_but_budget(rs[0], r)]
        for key in same or [setting_of(r)]:
            by_setting[key].append(r)
    out = {}
    for setting, rs in sorted(by_setting.items()):
        table = _setting(setting, rs, searches, replay, batchings)
        if table:
            out[setting] = table
    return out


def _grid_searched(runs: list[dict], searches: list[dict]) -> set[str]:
    """The points of this setting's live grid searches (``search=grid``), if it has any."""
    reference = next((r for r in runs if r.get("schedule") != "target"), runs[0])
    keys: set[str] = set()
    for search in searches:
        if search.get("strategy") != "grid" or not search.get("chosen") or search.get("target") is None:
            continue
        chosen = _read(Path(search["_path"]) / "trials" / search["chosen"]["key"] / "results.json")
        if chosen is not None and _same_setting(chosen, reference):
            keys |= {t["key"] for t in search.get("trials") or [] if t.get("state") == "complete"}
    return keys


class _Rows:
    """A setting's rows: per way of picking weights, its kind, and each seed's test score and compute."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, name: str, seed: int, test: float | None, cost: float, kind: str, extra: str = "") -> None:
        row = self.rows.setdefault(name, {"kind": kind, "test": {}, "cost": {}, "extra": extra})
        if test is not None and not math.isnan(test):
            row["test"][seed], row["cost"][seed] = test, cost


def _setting(
    setting: str, runs: list[dict], searches: list[dict], replay: bool, batchings: Sequence[str] = GRID_BATCHINGS
) -> dict[str, Any] | None:
    """One setting's frontier: the recorded grid and its oracle, then every fixed weighting beside the grid, learned
    method, live search, replayed strategy and best-of-k of the grid as rows."""
    # in the task's order (a live grid's product order, which a random pool of its points depends on)
    auxiliaries = list(dict.fromkeys(t for r in sorted(runs, key=lambda r: -len(r["tasks"])) for t in r["tasks"][1:]))
    full = max(r.get("epochs") or 0 for r in runs)
    seeds = sorted({r["seed"] for r in runs})
    grid = {s: recorded_points([r for r in runs if r["seed"] == s], auxiliaries) for s in seeds}
    fixed = set.intersection(*(set(g) for g in grid.values())) if grid else set()  # run at every seed
    if searched := _grid_searched(runs, searches):  # a live grid search defines the grid (not other fixed runs)
        common = fixed & searched
    else:  # the fixed weightings on the batchings a search space holds (single-task: every space's 0 point)
        common = {k for k in fixed if grid[seeds[0]][k].get("schedule") in ("target", *batchings)}
    if len(common) < 2:
        return None
    oracle = best_on_dev({k: [grid[s][k]["target_dev"] for s in seeds] for k in common})
    oracle_test = {s: grid[s][oracle]["target_test"] for s in seeds}
    rows = _Rows()
    for s in seeds:
        rows.add(f"oracle: {oracle}", s, oracle_test[s], len(common), "oracle")
    for k in sorted(fixed - common):  # fixed weightings beside the grid (another batching, a sweep's uniform)
        for s in seeds:
            rows.add(f"fixed, beside the grid: {method_key(grid[s][k])}", s, grid[s][k]["target_test"], 1.0, "fixed")
    _learned_rows(rows, runs)
    _live_rows(rows, runs, searches)
    if replay:
        _replay_rows(rows, runs, grid, sorted(common), auxiliaries, full)
    for k in range(1, len(common) + 1):
        for s in seeds:
            pts = [(grid[s][p]["target_dev"], grid[s][p]["target_test"]) for p in sorted(common)]
            rows.add(f"grid, best of {k}", s, best_of_k(pts, k), float(k), "grid")
    return {
        "oracle": oracle,
        "grid_points": len(common),
        "beside": len(fixed - common),
        "seeds": seeds,
        "full_epochs": full,
        "oracle_test": oracle_test,
        "rows": rows.rows,
        "early": early_ranking(grid, common, full),
    }


def _learned_rows(rows: _Rows, runs: list[dict]) -> None:
    """Every learned method's runs at their own cost, with their passes over twice their optimizer steps."""
    learned = defaultdict(list)
    for r in runs:
        if r.get("method") not in FIXED:
            learned[method_key(r)].append(r)
    for key in sorted(learned, key=method_order):
        for r in learned[key]:
            passes = r.get("passes") or {}
            ratio = (passes.get("forward", 0) + passes.get("backward", 0)) / max(1, 2 * r.get("optimizer_steps", 1))
            rows.add(key, r["seed"], r.get("target_test"), run_cost(r), "learned", f"passes / 2·steps {ratio:.2f}")


def _live_rows(rows: _Rows, runs: list[dict], searches: list[dict]) -> None:
    """Every live search of this setting at its total_runs, named by its strategy's label."""
    for search in searches:
        if search.get("target") is None or not search.get("chosen"):
            continue
        chosen = _read(Path(search["_path"]) / "trials" / search["chosen"]["key"] / "results.json")
        reference = next((r for r in runs if r.get("schedule") != "target"), runs[0])
        if chosen is None or not _same_setting(chosen, reference):
            continue  # the search of another setting (target, budget, dev size, epochs, auxiliaries)
        random_only = any("start-up proposals" in w for w in search.get("warnings") or [])
        name = f"search (live): {label(search['options'])}" + (" (random start-up only)" if random_only else "")
        rows.add(name, search["seed"], search["chosen"].get("test"), search["total_runs"], "live")


def _replay_rows(
    rows: _Rows, runs: list[dict], grid: dict[int, dict], common: list[str], auxiliaries: list[str], full: int
) -> None:
    """Every strategy of :data:`REPLAYS` replayed on each seed's recorded grid, with the live search's own code,
    sampler and pruner; its cost is what the replayed trials (and a recorded source run) spent."""
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, options in REPLAYS.items():
        for s in sorted(grid):
            points = {k: point_of(grid[s][k], auxiliaries) for k in common}  # every seed's grid
            trials = ReplayWithSources(
                {k: grid[s][k]["dev_history"] for k in common},
                full,
                {r.get("method_choice") or "": r for r in runs if r["seed"] == s and _plain(r)},
                list(points.values()),
                snap=options["strategy"] == "hybrid",
            )
            source = options.get("source") if options["strategy"] == "hybrid" else options["strategy"]
            if options["strategy"] in ("hybrid", "conditional") and source not in trials.sources:
                continue
            if options.get("proxy_epochs", 0) >= full:  # proxies as long as the run: not a proxy
                continue
            cfg = SearchConfig(**{**options, "seed": s})
            sampler, pruner = sampler_and_pruner(cfg)  # the live search's own
            study = optuna.create_study(  # named: the Hyperband pruner's brackets hash the study's name
                study_name=cfg.study_name, direction="maximize", sampler=sampler, pruner=pruner
            )
            chosen, _ = run_strategy(cfg, RecordedSpace(points, auxiliaries, s), trials, study)
            test = grid[s][chosen.key]["target_test"] if chosen and chosen.key in grid[s] else None
            if chosen is not None and chosen.key.startswith("source-"):
                test = trials.sources[source].get("target_test")
            rows.add(f"replay: {name}", s, test, trials.cost(), "replay")


def early_ranking(grid: dict[int, dict[str, dict]], common: set[str], full: int) -> dict[int, float]:
    """Spearman's ρ between the grid points' best dev score after e epochs and after all of them, mean over seeds."""
    out = {}
    for e in sorted({1, 2, max(1, full // 10), max(1, full // 4), max(1, full // 2)}):
        rhos = []
        for points in grid.values():
            keys = sorted(common)
            early = [max(points[k]["dev_history"][:e]) for k in keys]
            final = [max(points[k]["dev_history"]) for k in keys]
            rho = spearman(early, final)
            if not math.isnan(rho):
                rhos.append(rho)
        if rhos:
            out[e] = statistics.fmean(rhos)
    return out


def _cell(row: dict[str, Any], oracle_test: dict[int, float]) -> tuple[str, str, str, float, float, float]:
    seeds = sorted(row["test"])
    tests = [row["test"][s] for s in seeds]
    diffs = [100 * (row["test"][s] - oracle_test[s]) for s in seeds if s in oracle_test]
    mean, half = interval(diffs)
    cost = statistics.fmean(row["cost"][s] for s in seeds)
    spread = f" ± {statistics.stdev(tests):.4f}" if len(tests) > 1 else " (one seed)"
    delta = f"{mean:+.2f}" + (f" ± {half:.2f}" if not math.isnan(half) else "")
    return f"{statistics.fmean(tests):.4f}{spread}", delta, f"{cost:.2f}", mean, cost, half


def write_report(tables: dict[str, dict[str, Any]], out: Path, roots: Sequence[Path]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Frontier: {', '.join(str(r) for r in roots)}", ""]
    lines.append(
        "Target test score against total compute, per setting. Δ: paired difference to the oracle's test score over "
        "the seeds, in points (× 100), ± the half-width of its 95% t-interval. Compute: training, in full runs (a "
        "trial that trained e of E epochs counts e / E; a learned method's run counts 1, its extra passes beside "
        "it). Replayed strategies ran on the recorded grid's dev histories (no training): the test score is that of "
        "the grid run they chose. The grid rows are the expected score of the dev-best of k random grid points."
    )
    for setting, t in tables.items():
        lines += ["", f"## {setting}", ""]
        lines.append(
            f"Oracle: `{t['oracle']}` (best mean dev of {t['grid_points']} grid points); seeds "
            f"{', '.join(map(str, t['seeds']))}; {t['full_epochs']} epochs a full run."
            + (
                f" {t['beside']} fixed weighting(s) beside the grid (another batching, or a sweep's own run), each at"
                " one run: neither the oracle's candidates nor points a replayed search proposes."
                if t.get("beside")
                else ""
            )
        )
        lines += ["", "| # | way to pick the weights | compute (runs) | target test | Δ to oracle (points) | note |"]
        lines.append("|---|---|---|---|---|---|")
        plotted = []  # (number in the figure, kind, compute, mean Δ, its interval's half-width)
        for name, row in t["rows"].items():
            if not row["test"]:
                continue
            test, delta, cost, mean, c, half = _cell(row, t["oracle_test"])
            if row["kind"] == "grid":
                plotted.append(("", row["kind"], c, mean, half))
                if name not in (f"grid, best of {k}" for k in (1, 2, 3, 4, 6, 9, 27, 81)):
                    continue
                number = ""
            else:
                number = str(1 + sum(1 for n, *_ in plotted if n))
                plotted.append((number, row["kind"], c, mean, half))
            lines.append(f"| {number} | {name} | {cost} | {test} | {delta} | {row['extra']} |")
        if t["early"]:
            early = ", ".join(f"after {e}: {rho:.2f}" for e, rho in t["early"].items())
            lines += [
                "",
                f"How early rankings predict the final one (Spearman ρ of best dev so far with final): {early}.",
            ]
        figure = plot(setting, plotted, out)
        if figure:
            lines += ["", f"![frontier]({figure.name})"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _label_points(ax: Any, points: list[tuple[str, float, float]]) -> None:
    """Each point's number beside it; points at about the same compute get their numbers stacked in a column to their
    right, at least a line apart, each joined to its point by a thin line, so that no two numbers overlap."""
    low, high = min(m for *_, m in points), max(m for *_, m in points)
    gap = max(high - low, 1.0) * 0.045
    columns: dict[int, list[tuple[str, float, float]]] = defaultdict(list)
    for number, c, m in points:
        columns[round(20 * math.log10(c))].append((number, c, m))  # within ~12% of compute: one column
    for column in columns.values():
        place = math.inf
        for number, c, m in sorted(column, key=lambda p: -p[2]):
            place = min(m, place - gap)
            moved = abs(place - m) > 1e-9
            ax.annotate(number, (c, m), xytext=(c * 1.12, place), textcoords="data", fontsize=6, va="center",
                        arrowprops={"arrowstyle": "-", "lw": 0.3, "color": "grey"} if moved else None)  # fmt: skip


def plot(setting: str, rows: list[tuple[str, str, float, float, float]], out: Path) -> Path | None:
    """Δ to the oracle against compute: each point with its 95% interval, numbered as in the report's table (names
    beside the points overlap where several land together)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid = sorted((c, m) for n, k, c, m, h in rows if k == "grid")
    if grid:
        ax.plot([c for c, _ in grid], [m for _, m in grid], "-", color="grey", label="grid, best of k")
    style = {
        "fixed": ("^", "tab:purple"),
        "learned": ("o", "tab:blue"),
        "live": ("*", "tab:red"),
        "replay": ("s", "tab:green"),
        "oracle": ("D", "k"),
    }
    points = [(number, kind, c, m, half) for number, kind, c, m, half in rows if kind in style]
    for _, kind, c, m, half in points:
        marker, color = style[kind]
        yerr = None if math.isnan(half) else half
        ax.errorbar([c], [m], yerr=yerr, fmt=marker, color=color, alpha=0.8, elinewidth=0.8, capsize=2)
    _label_points(ax, [(number, c, m) for number, _, c, m, _ in points])
    ax.set_xscale("log")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("total compute (full runs)")
    ax.set_ylabel("Δ target test to the oracle (points)")
    ax.set_title(setting, fontsize=8)
    for kind, (marker, color) in style.items():
        ax.plot([], [], marker, color=color, label=kind)
    ax.legend(fontsize=7)
    path = out / f"frontier_{''.join(ch if ch.isalnum() else '_' for ch in setting)[:80]}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-replay", action="store_true", help="only recorded runs and live searches")
    parser.add_argument(
        "--grid-batching",
        default=",".join(GRID_BATCHINGS),
        help="the batchings of the grid where no live grid search names it (comma-separated; default %(default)s)",
    )
    args = parser.parse_args(argv)
    batchings = args.grid_batching.split(",")
    if unknown := [b for b in batchings if b not in BATCHINGS]:
        parser.error(f"--grid-batching: {', '.join(unknown)} is not a batching (one of {', '.join(BATCHINGS)})")
    tables = frontier(args.dirs, replay=not args.no_replay, batchings=batchings)
    path = write_report(tables, args.out or args.dirs[0] / "frontier", args.dirs)
    print(path)


if __name__ == "__main__":
    main()
