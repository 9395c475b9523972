"""Cost benchmark: each method's wall seconds per 1,000 training examples and peak memory, side by side.

    python -m experiments.bench [--groups multimnist glue glue_speed processes budget k_scaling] [--repeats 3]
        [--train-examples 10000]
        [--glue-examples 160] [--budget equal fraction]

One process, one method after another on the same data: MultiMNIST with the LeNet, and GLUE (RTE with
MRPC and STS-B auxiliaries) with the local MiniLM encoder when ``ALPHAVIL_DATA_DIR`` has it. An example
is one input through a forward/backward pass, dev batches (DIW's matching, αVIL's α-steps) included.
Peak memory is the process's peak resident set during that method's epoch (Linux ``VmHWM``, reset before
each method), after one untimed warm-up epoch. Each method's epoch is timed ``--repeats`` times, the
methods taking turns so that a slow spell of the machine is spread over all of them; the table gives the
median and the min–max range. Also the ratio of the Lightning loop to a plain PyTorch loop on the same
model and batches, and (``processes``) the throughput of two DDP processes against one: uniform on
MultiMNIST, each run a ``python -m src.run`` subprocess, timed by its own epoch clock after a warm-up epoch.
``budget``: every method at one matched budget on the known-effect setting ``multimnist_low_coarse`` (1,000
target examples beside 54,000 of an auxiliary), seconds per epoch beside the examples and optimizer steps the
epoch took, against fixed weights on sampled batches (αVIL's examples and steps): the cost of a comparison at
equal budget is the budget's, not a method's defaults. ``glue_speed``: GLUE's fast CPU path piece by piece,
uniform's training examples per second in float32, under bf16 autocast, and under bf16 with batches grouped by
length (the GLUE default on a CPU with AVX512-BF16: ``trainer=auto``, ``task.group_by_length=50``).
``k_scaling``: an STS-B target beside K = 1, 2, 3, 5 GLUE auxiliaries at equal examples each, for uniform on
sampled batches, αVIL, ForkMerge, PCGrad and DIW: seconds per epoch and peak memory against K, a fitted slope.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from src.config import ROOT
from src.data.schedule import DEV, step_loader
from src.record import peak_rss_mb, reset_peak_rss
from src.runtime import pin
from src.train import build

METHODS = tuple(sorted(p.stem for p in (ROOT / "conf" / "method").glob("*.yaml")))  # every method config


def config(overrides: list[str], out: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"paths.output_dir={out}"], return_hydra_config=True)
    return pin(cfg)


def examples_in(plan) -> int:
    return sum(len(idx) for step in plan for idx in step.indices.values())


def bench_method(overrides: list[str], out: Path) -> dict[str, float]:
    datamodule, module, trainer = build(config(overrides, out))
    datamodule.setup()
    n = examples_in(datamodule.plan(0))
    gc.collect()
    reset_peak_rss()
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    return {
        "examples": n,
        "s_per_1k": 1000 * seconds / n,
        "peak_mb": peak_rss_mb(),
        "epoch_s": module.epoch_seconds[0],
        "steps": module.spent["optimizer_steps"],
        "trained": sum(module.examples_seen.values()),
    }


def plain_loop(overrides: list[str], out: Path) -> float:
    """The uniform method's epoch as a hand-written PyTorch loop: seconds per 1,000 examples."""
    datamodule, module, _ = build(config([*overrides, "method=uniform"], out))
    datamodule.setup()
    plan = datamodule.plan(0)
    model, specs = module.model, module.specs
    opt = module.configure_optimizers()
    model.train()
    start = time.perf_counter()
    for step in step_loader(plan, {**datamodule.train_sets, DEV: datamodule.dev_set}):
        loss = sum(specs[t].loss(model(t, b), b["labels"]).mean() for t, b in step.data.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return 1000 * (time.perf_counter() - start) / examples_in(plan)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def table(runs: dict[str, list[dict[str, float]]]) -> list[str]:
    """The Markdown table of timed epochs per method: median (range) per 1k examples, ratio to uniform's median."""
    seconds = {m: [r["s_per_1k"] for r in rs] for m, rs in runs.items()}
    base = statistics.median(seconds["uniform"])
    lines = ["| method | examples | s / 1k examples | × uniform | peak RSS (MB) |", "|---|---|---|---|---|"]
    for m, rs in runs.items():
        ratio = statistics.median(seconds[m]) / base
        peak = max(r["peak_mb"] for r in rs)
        lines.append(f"| {m} | {rs[0]['examples']} | {spread(seconds[m])} | {ratio:.2f} | {peak:.0f} |")
    return lines


ONE_EPOCH = [  # one training epoch and nothing else: no validation, test, logger or checkpoint
    "trainer.max_epochs=1",
    "trainer.limit_val_batches=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
    "callbacks=none",
    "test=false",
]


def run_group(name: str, overrides: list[str], out: Path, repeats: int = 3) -> list[str]:
    common = [*overrides, *ONE_EPOCH]
    bench_method([*common, "method=uniform"], out / "warmup")  # untimed: thread pools, kernels, lazy imports
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for _ in range(repeats):  # methods take turns, so drift in the machine's speed hits all of them alike
        for m in METHODS:
            runs[m].append(bench_method([*common, f"method={m}"], out / m))
    lines = [f"### {name}", "", f"Median of {repeats} epochs per method (min–max in brackets).", "", *table(runs)]
    base = statistics.median(r["s_per_1k"] for r in runs["uniform"])
    plain = [plain_loop(common, out / "plain") for _ in range(repeats)]
    plain_s = statistics.median(plain)
    lines += [
        "",
        f"Lightning loop / plain PyTorch loop (uniform, same model and batches): "
        f"{base:.3f} / {plain_s:.3f} s per 1k examples = {base / plain_s:.2f}× (plain loop: {spread(plain)})",
        "",
    ]
    return lines


GLUE_PATHS = {  # GLUE's fast path, piece by piece: float32 as planned, bf16 autocast, bf16 with length grouping
    "float32": ["trainer.precision=32-true", "task.group_by_length=null"],
    "bf16": ["trainer.precision=bf16-mixed", "task.group_by_length=null"],
    "bf16 + length grouping": ["trainer.precision=bf16-mixed", "task.group_by_length=50"],
}


def glue_speed(overrides: list[str], out: Path, repeats: int = 3) -> list[str]:
    """Uniform's training examples per second on GLUE under each of :data:`GLUE_PATHS`, taking turns."""
    common = [*overrides, *ONE_EPOCH, "method=uniform", "trainer.accelerator=cpu"]
    bench_method([*common, *GLUE_PATHS["float32"]], out / "warmup")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in GLUE_PATHS}
    for _ in range(repeats):
        for name, path in GLUE_PATHS.items():
            runs[name].append(bench_method([*common, *path], out / name.replace(" ", "")))
    base = statistics.median(1000 / r["s_per_1k"] for r in runs["float32"])
    lines = [
        "### GLUE throughput (MiniLM, uniform; rte with mrpc, stsb)",
        "",
        f"Training examples per second over one epoch, median of {repeats} (min–max); the same plan in every row.",
        "",
        "| path | examples | examples / s | × float32 | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        rates = [1000 / r["s_per_1k"] for r in rs]
        lines.append(
            f"| {name} | {rs[0]['examples']} | {statistics.median(rates):.1f} ({min(rates):.1f}–{max(rates):.1f}) | "
            f"{statistics.median(rates) / base:.2f} | {max(r['peak_mb'] for r in rs):.0f} |"
        )
    return [*lines, ""]


def budget_group(rule: list[str], out: Path, repeats: int = 3, extra: list[str] | None = None) -> list[str]:
    """Seconds per epoch of every method at one budget, beside what the epoch trained on and its steps."""
    common = [
        "task=multimnist_low_coarse",
        *rule,
        *(extra or []),
        "task.max_eval_examples=500",
        *ONE_EPOCH,
    ]
    variants = {"uniform · sampled": ["method=uniform", "task.batching=sampled"]}
    variants.update({("uniform · mixed" if m == "uniform" else m): [f"method={m}"] for m in METHODS})
    bench_method([*common, "method=uniform"], out / "warmup")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, overrides in variants.items():
            runs[name].append(bench_method([*common, *overrides], out / name.replace(" · ", "_")))
    base = statistics.median(r["epoch_s"] for r in runs["uniform · sampled"])
    lines = [
        f"### Matched budget: multimnist_low_coarse, {' '.join(rule) or 'task.budget=equal'}",
        "",
        f"Median of {repeats} epochs per method (min–max in brackets); training examples and optimizer steps of "
        "one epoch (dev batches not counted as training examples).",
        "",
        "| method | training examples / epoch | optimizer steps / epoch | s / epoch | × uniform · sampled |",
        "|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        seconds = [r["epoch_s"] for r in rs]
        lines.append(
            f"| {name} | {rs[0]['trained']:,} | {rs[0]['steps']:,} | {spread(seconds)} | "
            f"{statistics.median(seconds) / base:.2f} |"
        )
    return [*lines, ""]


K_AUXILIARIES = ["mrpc", "rte", "sst2", "cola", "wnli"]  # every GLUE task with a training split in the local copy
K_METHODS = {
    "uniform · sampled": ["method=uniform", "task.batching=sampled"],
    "alphavil": ["method=alphavil"],
    "forkmerge": ["method=forkmerge"],
    "pcgrad": ["method=pcgrad"],
    "diw": ["method=diw"],
}


def k_scaling(overrides: list[str], out: Path, ks: list[int], repeats: int = 2) -> list[str]:
    """Seconds per epoch and peak memory against the number of auxiliaries K, at a fixed budget per auxiliary
    (``task.budget=equal``: each auxiliary as many examples per epoch as the target), with a line fitted per method.

    Linear in K is the goal (each auxiliary adds its examples); a method is flagged super-linear when a quadratic
    term explains the curve markedly better (its seconds at the largest K exceed the line through the others).
    """
    common = [*overrides, *ONE_EPOCH, "task.budget=equal"]
    bench_method([*common, "task.auxiliaries=[mrpc]", "method=uniform"], out / "warmup")
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(repeats):
        for k in ks:
            aux = f"task.auxiliaries=[{','.join(K_AUXILIARIES[:k])}]"
            for name, method in K_METHODS.items():
                runs.setdefault((name, k), []).append(bench_method([*common, aux, *method], out / f"k{k}"))
    shared = _shared_parameters(common)
    lines = [
        "### Cost against the number of auxiliaries K (GLUE, MiniLM, stsb target)",
        "",
        f"Median of {repeats} epochs; every auxiliary {{n}} examples per epoch (the target's). Slope: seconds per "
        "epoch per added auxiliary (least squares over K); memory: the process's peak resident set in the epoch. "
        f"The shared parameters hold {shared / 2**20:.0f} MB (float32).",
        "",
        "| method | " + " | ".join(f"K={k}: s / epoch, peak MB" for k in ks) + " | slope (s per auxiliary) | "
        "last point over the line through the others |",
        "|---|" + "---|" * (len(ks) + 2),
    ]
    for name in K_METHODS:
        seconds = [statistics.median(r["epoch_s"] for r in runs[name, k]) for k in ks]
        peaks = [max(r["peak_mb"] for r in runs[name, k]) for k in ks]
        slope, intercept = _line(ks, seconds)
        early_slope, early_intercept = _line(ks[:-1], seconds[:-1])
        excess = seconds[-1] / (early_slope * ks[-1] + early_intercept) - 1
        cells = " | ".join(f"{s:.1f}, {p:.0f}" for s, p in zip(seconds, peaks))
        lines.append(f"| {name} | {cells} | {slope:.2f} | {excess:+.0%} |")
    alpha = [max(r["peak_mb"] for r in runs["alphavil", k]) - max(r["peak_mb"] for r in runs["uniform · sampled", k])
             for k in ks]  # fmt: skip
    lines += [
        "",
        "αVIL's peak memory above uniform's, against K × the shared parameters and against what its fork holds "
        "((K + 4) × shared: K + 1 flat deltas, the target's included, the epoch-start θ and AdamW's two moments "
        "as saved at the fork; float32): "
        + ", ".join(
            f"K={k}: {a:+.0f} MB (K × shared {k * shared / 2**20:.0f} MB, (K + 4) × shared "
            f"{(k + 4) * shared / 2**20:.0f} MB)"
            for k, a in zip(ks, alpha)
        ),
        "",
    ]
    return [line.replace("{n}", overrides_value(overrides, "task.max_train_examples")) for line in lines]


def overrides_value(overrides: list[str], key: str) -> str:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith(key + "=")), "?")


def _line(xs: list[int], ys: list[float]) -> tuple[float, float]:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(sum((x - mx) ** 2 for x in xs), 1e-12)
    return slope, my - slope * mx


def _shared_parameters(overrides: list[str]) -> int:
    """Bytes of the shared parameters (the trunk) of the bench's model, as stored."""
    _, module, _ = build(config([*overrides, "task.auxiliaries=[mrpc]", "method=uniform"], ROOT / "logs" / "bench"))
    return sum(p.numel() * p.element_size() for p in module.shared_parameters().values())


def process_scaling(train_examples: int, out: Path, repeats: int, extra: list[str] | None = None) -> list[str]:
    """Examples per second of uniform on one process and on two (DDP, gloo): the same plan, sharded."""
    epochs = repeats + 1  # the first epoch warms up and is not counted

    def throughput(devices: int) -> tuple[float, list[float]]:
        folder, strategy = out / f"devices{devices}", "ddp" if devices > 1 else "auto"
        cmd = [
            sys.executable, "-m", "src.run", "task=multimnist_left", "method=uniform",
            f"task.max_train_examples={train_examples}", "task.max_eval_examples=500", f"trainer.max_epochs={epochs}",
            "trainer.accelerator=cpu", f"trainer.devices={devices}", f"trainer.strategy={strategy}",
            "trainer.enable_progress_bar=false", "logger=none", "callbacks=none", "test=false", "ckpt_path=null",
            f"hydra.run.dir={folder}", *(extra or []),
        ]  # fmt: skip
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        results = json.loads((folder / "results.json").read_text())
        per_epoch = sum(results["examples_seen"].values()) / len(results["epoch_seconds"])
        speeds = [per_epoch / s for s in results["epoch_seconds"][1:]]
        return statistics.median(speeds), speeds

    one, one_all = throughput(1)
    two, two_all = throughput(2)
    return [
        "### Processes (uniform, MultiMNIST, DDP over gloo on the CPU)",
        "",
        "| processes | examples / s, median (range) | × one process |",
        "|---|---|---|",
        f"| 1 | {one:.0f} ({min(one_all):.0f}–{max(one_all):.0f}) | 1.00 |",
        f"| 2 | {two:.0f} ({min(two_all):.0f}–{max(two_all):.0f}) | {two / one:.2f} |",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    groups = ["multimnist", "glue", "glue_speed", "processes", "budget", "k_scaling"]
    parser.add_argument("--groups", nargs="+", default=groups, choices=groups)
    parser.add_argument(
        "--budget", nargs="+", default=["equal", "fraction"], help="task.budget rules for the budget group"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per method (median reported)")
    parser.add_argument("--train-examples", type=int, default=10000, help="MultiMNIST examples per task")
    parser.add_argument("--glue-examples", type=int, default=160, help="GLUE examples per task")
    parser.add_argument("--k", nargs="+", type=int, default=[1, 2, 3, 5], help="k_scaling: numbers of auxiliaries")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "bench")
    args = parser.parse_args(argv)
    for name in ("pytorch_lightning", "lightning_fabric"):  # no banner per method and repeat
        logging.getLogger(name).setLevel(logging.WARNING)
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar per run
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs", ""]
    if "multimnist" in args.groups:
        lines += run_group(
            "MultiMNIST (LeNet; left with right)",
            ["task=multimnist_left", f"task.max_train_examples={args.train_examples}", "task.max_eval_examples=500"],
            args.out / "multimnist",
            args.repeats,
        )
    data = Path(os.environ.get("ALPHAVIL_DATA_DIR", ROOT / "data"))
    glue = [
        "task=glue_rte",
        "model=minilm",
        "task.auxiliaries=[mrpc,stsb]",
        f"task.max_train_examples={args.glue_examples}",
        "task.max_eval_examples=64",
        "model.max_length=128",
    ]
    have_glue = (data / "models" / "all-MiniLM-L6-v2").exists() and (data / "glue").exists()
    for group in ("glue", "glue_speed", "k_scaling"):
        if group not in args.groups:
            continue
        if not have_glue:
            missing = f"skipped: no MiniLM encoder or GLUE copy under {data} (ALPHAVIL_DATA_DIR)"
            lines += [f"### {group}", "", missing, ""]
        elif group == "glue":
            lines += run_group("GLUE (MiniLM; rte with mrpc, stsb)", glue, args.out / "glue", args.repeats)
        elif group == "k_scaling":
            target = ["task=glue_stsb", *(o for o in glue[1:] if not o.startswith("task.auxiliaries"))]
            lines += k_scaling(target, args.out / "k", args.k, args.repeats)
        else:
            lines += glue_speed(glue, args.out / "glue_speed", args.repeats)
    if "processes" in args.groups:
        lines += process_scaling(args.train_examples, args.out / "processes", args.repeats)
    if "budget" in args.groups:
        for rule in args.budget:
            lines += budget_group([f"task.budget={rule}"], args.out / "budget" / rule, args.repeats)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
