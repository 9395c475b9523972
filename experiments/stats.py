"""The statistics every report uses: paired differences with their t-interval, and Spearman's rank correlation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96)
T95 = (
    (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
    + (2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086)
    + (2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
)


def paired_diffs(runs: Sequence[dict], reference: Sequence[dict], key: str = "target_test") -> list[float]:
    """``key`` of each run minus that of the reference run with the same seed (seeds on one side only skipped)."""
    ref = {r["seed"]: r[key] for r in reference}
    return [r[key] - ref[r["seed"]] for r in runs if r["seed"] in ref]


def interval(diffs: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan with fewer than two values)."""
    if not diffs:
        return math.nan, math.nan
    if len(diffs) < 2:
        return statistics.fmean(diffs), math.nan
    t = T95[len(diffs) - 2] if len(diffs) - 1 <= len(T95) else 1.96
    return statistics.fmean(diffs), t * statistics.stdev(diffs) / len(diffs) ** 0.5


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's ρ (average ranks for ties); nan with fewer than three points or a constant side."""
    if len(xs) < 3:
        return math.nan

    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    if sx == 0 or sy == 0:
        return math.nan
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (sx * sy)
