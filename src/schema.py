"""Config schemas: the dataclasses that validate every composed config, and the checks they use.

It imports nothing from ``src`` at import time, so any module (:mod:`src.methods.options`, which defines every
method's schema on :class:`MethodConfig`) can import it first without an import cycle.
Registration in Hydra's ConfigStore lives in :mod:`src.config`. Value checks (ranges, choices, a target
outside its task group) live in each schema's ``__post_init__``; the error names the key and the value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

BUDGETS = ("equal", "proportional", "temperature", "fraction", "counts")  # src.data.schedule.epoch_budget
HUGE = 1e4  # a task weight beyond this (the target's is 1) is a diverged weighting, whatever its rule
PHASES = ("alpha", "merge", "finetune")
"""Names a method gives its own phases in ``Step.block`` (αVIL's α-steps, ForkMerge's merge, post-training's
target phase) beside the task names of per-task blocks: no task may be named so (:func:`check_tasks`)."""
BATCHINGS = ("mixed", "sampled", "matched")  # src.data.schedule.mixed_plan, sampled_plan, matched_plan
LR_SCHEDULES = ("constant", "linear")  # src.module.lr_factor


class ConfigError(ValueError):
    """A config value is invalid; the message names the key and the value."""


# --- checks used by the schemas (the methods' options in src/methods/options.py use them too) -------
def positive(obj: Any, *names: str, allow_none: bool = False) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None and allow_none:
            continue
        if value is None or not 0 < value < math.inf:  # also rejects nan and inf
            raise ConfigError(f"{name}={value}: must be a positive, finite number" + (" or null" if allow_none else ""))


def non_negative(obj: Any, *names: str) -> None:
    for name in names:
        if not 0 <= (value := getattr(obj, name)) < math.inf:
            raise ConfigError(f"{name}={value}: must be a finite number >= 0")


def finite(obj: Any, *names: str) -> None:
    for name in names:
        if not math.isfinite(value := getattr(obj, name)):
            raise ConfigError(f"{name}={value}: must be a finite number")


def at_least(obj: Any, name: str, low: int, allow_none: bool = False) -> None:
    """An integer option with a lower bound (a count of steps, epochs, examples)."""
    value = getattr(obj, name)
    if value is None and allow_none:
        return
    if value is None or not low <= value < math.inf:
        raise ConfigError(f"{name}={value}: must be >= {low}" + (" or null" if allow_none else ""))


def fraction(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not 0 < value <= 1:
            raise ConfigError(f"{name}={value}: must be a fraction in (0, 1]")


def below_one(obj: Any, *names: str) -> None:
    """In [0, 1): a rate, a slack or a decay."""
    for name in names:
        if not 0 <= (value := getattr(obj, name)) < 1:
            raise ConfigError(f"{name}={value}: must be in [0, 1)")


def identifiers(obj: Any, name: str) -> None:
    """The keys of a mapping of tasks are task names, which become file names (caches) and keys (results.json,
    loggers): identifiers only, so no name can reach outside its folder or collide with a path."""
    for key in getattr(obj, name):
        if not str(key).isidentifier():
            raise ConfigError(
                f"{name} has a task named {key!r}: a task name must be an identifier (letters, digits and _, not "
                "starting with a digit), as it names cache files and results.json keys"
            )


def choice(obj: Any, name: str, choices: tuple[str, ...]) -> None:
    if (value := getattr(obj, name)) not in choices:
        raise ConfigError(f"{name}={value!r}: must be one of {', '.join(choices)}")


# --- task ----------------------------------------------------------------------------------------
@dataclass
class TaskConfig:
    """Target, auxiliaries and data settings; the fields are the DataModule's arguments."""

    _target_: str = MISSING
    target: str = MISSING
    auxiliaries: list[str] = field(default_factory=list)
    batch_size: int = 64
    eval_batch_size: int = 256
    max_train_examples: int | None = None  # per task; a quick run on a slice is one override
    train_examples: dict[str, int] = field(default_factory=dict)  # per-task caps over max_train_examples
    # the budget: examples of each auxiliary per epoch, beside the target's pass; every method draws from it
    budget: str = "equal"  # equal | proportional | temperature | fraction | counts
    temperature: float = 2.0  # budget=temperature: size^(1/T); T >= 1 (1: proportional, large: equal)
    budget_fraction: float = 0.5  # budget=fraction: this share of each auxiliary per epoch
    budget_examples: dict[str, int] = field(default_factory=dict)  # budget=counts: auxiliary → examples per epoch
    # mixed: each step a batch of every task | sampled: one task's batch per step | matched: a batch of every task
    # in each step, at sampled's step count and examples (each task's share about batch_size / (K + 1))
    batching: str = "mixed"
    max_eval_examples: int | None = None  # dev and each test split
    dev_examples: int | None = None  # the target's dev split, capped (a low-resource dev set); over max_eval_examples
    dev_fraction: float = 0.1
    seed: int = "${seed}"  # type: ignore[assignment]
    num_workers: int = 0

    def __post_init__(self) -> None:
        from hydra.utils import get_class

        positive(self, "batch_size", "eval_batch_size")
        positive(self, "max_train_examples", "max_eval_examples", "dev_examples", allow_none=True)
        fraction(self, "dev_fraction", "budget_fraction")
        choice(self, "budget", BUDGETS)
        choice(self, "batching", BATCHINGS)
        positive(self, "temperature")
        if self.temperature < 1:
            raise ConfigError(
                f"temperature={self.temperature}: must be >= 1 (1 draws in proportion to size, larger values "
                "move towards equal; below 1 would favour large auxiliaries beyond their size)"
            )
        non_negative(self, "num_workers")
        if self.dev_fraction == 1:
            raise ConfigError("dev_fraction=1: nothing would be left to train on; use a value below 1")
        datamodule = get_class(self._target_)
        auxiliaries = [] if self.auxiliaries == "auto" else list(self.auxiliaries)
        offered = [*datamodule.TASKS, *(getattr(self, "tasks", None) or {})]  # a text group's own tasks too
        try:
            check_tasks(datamodule.GROUP, offered, self.target, auxiliaries)
        except ValueError as e:
            raise ConfigError(str(e).removeprefix("task.")) from None
        if self.auxiliaries == "auto":  # the task group's one rule, as its runs and searches resolve it
            auxiliaries = datamodule.resolve_auxiliaries(
                {
                    k: getattr(self, k)
                    for k in ("target", "auxiliaries", "tasks", "source", "data_dir")
                    if hasattr(self, k)
                }
            )
        training = [self.target, *auxiliaries]
        if self.batching == "matched" and self.auxiliaries != "auto" and self.batch_size < len(training):
            raise ConfigError(
                f"batching=matched splits each step's batch_size={self.batch_size} among {len(training)} tasks: at "
                f"least one example of each needs batch_size >= {len(training)}"
            )
        for task, n in self.train_examples.items():
            if task not in training:
                raise ConfigError(f"train_examples has {task!r}, which is not a training task ({', '.join(training)})")
            if not 0 < n < math.inf:
                raise ConfigError(f"train_examples.{task}={n}: must be a positive number")
        for task, n in self.budget_examples.items():
            if task not in auxiliaries:
                raise ConfigError(f"budget_examples has {task!r}, which is not an auxiliary ({', '.join(auxiliaries)})")
            if not 0 < n < math.inf:
                raise ConfigError(f"budget_examples.{task}={n}: must be a positive number")
        missing = sorted(set(auxiliaries) - set(self.budget_examples))
        if self.budget == "counts" and missing and self.auxiliaries != "auto":  # auto: checked when the data loads
            raise ConfigError(f"budget=counts needs budget_examples for every auxiliary; missing: {', '.join(missing)}")
        # no option silently ignored: a budget rule's parameter without its rule
        for option, rule, unset in (("temperature", "temperature", 2.0), ("budget_fraction", "fraction", 0.5)):
            if self.budget != rule and getattr(self, option) != unset:
                raise ConfigError(
                    f"{option}={getattr(self, option)} is read only by budget={rule} (budget={self.budget} here): "
                    f"set task.budget={rule}, or leave {option} out"
                )
        if self.budget != "counts" and self.budget_examples:
            raise ConfigError(
                f"budget_examples is read only by budget=counts (budget={self.budget} here): set task.budget=counts, "
                "or leave budget_examples out"
            )


@dataclass
class MultiMNISTTaskConfig(TaskConfig):
    GROUP: ClassVar[str] = "multimnist"
    _target_: str = "src.data.multimnist.MultiMNISTDataModule"
    batch_size: int = 256
    eval_batch_size: int = 1000
    data_dir: str = "${paths.data_dir}"
    cache_dir: str = "${paths.cache_dir}"
    download: bool = True  # try the MNIST mirrors when a file is missing
    verify_checksums: bool = True


@dataclass
class TextTaskConfig(TaskConfig):
    """Text tasks declared in configuration (``task.tasks``: name → entry, src/data/text.py)."""

    GROUP: ClassVar[str] = "text"

    _target_: str = "src.data.text.TextTaskGroup"
    auxiliaries: Any = "auto"  # a list, or auto: every other task listed
    tokenizer: Any = "${oc.select:model.pretrained,null}"
    max_length: int = "${oc.select:model.max_length,128}"  # type: ignore[assignment]
    batch_size: int = 16
    eval_batch_size: int = 64
    cache_dir: str = "${paths.cache_dir}"
    # examples of a task regrouped by length inside each window of this many steps (padding follows the
    # longest example of a batch); null: batches as planned. Budgets and steps are unchanged.
    group_by_length: int | None = 50
    tasks: dict[str, Any] = field(default_factory=dict)  # name → {path or data_files, text, label, ...}

    def __post_init__(self) -> None:
        if self.auxiliaries != "auto" and not isinstance(self.auxiliaries, list | tuple):
            raise ConfigError(f"auxiliaries={self.auxiliaries!r}: must be a list of tasks or auto")
        if self._target_ == TextTaskConfig._target_ and not self.tasks:
            raise ConfigError(
                "tasks is empty: list your tasks under task.tasks (name: {data_files or path, text, label})"
            )
        identifiers(self, "tasks")
        super().__post_init__()
        if self.tokenizer is None:
            raise ConfigError("tokenizer=None: text tasks need an encoder model; use model=encoder or model=minilm")
        positive(self, "max_length")
        positive(self, "group_by_length", allow_none=True)


@dataclass
class ImageTaskConfig(TaskConfig):
    """Image tasks listed in CSV or parquet files (``task.tasks``: name → entry, src/data/images.py)."""

    GROUP: ClassVar[str] = "images"

    _target_: str = "src.data.images.ImageTaskGroup"
    auxiliaries: Any = "auto"  # a list, or auto: every other task listed
    tasks: dict[str, Any] = field(default_factory=dict)  # name → {data_files, image, label, ...}
    image_size: int = 28  # the side images are resized to (28: model=lenet's input)
    cache_dir: str = "${paths.cache_dir}"

    def __post_init__(self) -> None:
        if self.auxiliaries != "auto" and not isinstance(self.auxiliaries, list | tuple):
            raise ConfigError(f"auxiliaries={self.auxiliaries!r}: must be a list of tasks or auto")
        if not self.tasks:
            raise ConfigError("tasks is empty: list your tasks under task.tasks (name: {data_files, image, label})")
        identifiers(self, "tasks")
        super().__post_init__()
        positive(self, "image_size")


@dataclass
class GLUETaskConfig(TextTaskConfig):
    """GLUE: the text task group with GLUE's nine tasks as presets, and any of your own beside them."""

    GROUP: ClassVar[str] = "glue"
    # task=glue_<target> for each target here (task=glue with task.target set: one config, nine names), and its
    # auxiliaries by default: the other GLUE tasks of the same kind (sentence pairs for a pair
    # target, single sentences for CoLA and SST-2), those with training data in the local copy first. WNLI is left
    # out unless named: its training set is adversarial to its test set. MNLI, QNLI and QQP are the natural
    # auxiliaries of RTE and MRPC where their training splits are at hand (task.auxiliaries=[mnli,qnli,mrpc]).
    DEFAULT_AUXILIARIES: ClassVar[dict[str, list[str]]] = {
        "rte": ["mrpc", "stsb"],
        "mrpc": ["stsb", "rte"],
        "stsb": ["mrpc", "rte"],
        "cola": ["sst2"],
        "sst2": ["cola"],
        "mnli": ["rte", "mrpc"],
        "qnli": ["rte", "mrpc"],
        "qqp": ["mrpc", "stsb"],
        "wnli": ["rte"],
    }

    _target_: str = "src.data.glue.GLUEDataModule"
    source: str = "auto"  # auto (<data_dir>/glue if present, else the Hub) | a Hub name | a folder
    data_dir: str = "${paths.data_dir}"


# --- method --------------------------------------------------------------------------------------
@dataclass
class MethodConfig:
    """Base of each method's schema; every method's is in :mod:`src.methods.options` (torch-free)."""

    _target_: str = MISSING


# --- model ---------------------------------------------------------------------------------------
@dataclass
class OptimizerConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        positive(self, "lr")
        non_negative(self, "weight_decay")


@dataclass
class LRScheduleConfig:
    """The learning rate over training, as a factor of ``model.optimizer.lr`` (src.module.lr_factor).

    ``linear``: rises from 0 over the first ``warmup`` of training, then falls linearly to 0 at its end (the
    usual schedule for fine-tuning an encoder). Training's progress is counted in planned steps of each epoch
    over ``trainer.max_epochs``, so every method, whatever its steps do, follows the same curve.
    """

    kind: str = "constant"  # constant | linear
    warmup: float = 0.0  # fraction of training; linear only
    # the length, in epochs, the schedule is laid over; null: trainer.max_epochs. A search sets the full run's, so
    # that a trial stopped after fewer epochs is a prefix of the full run and continues from its checkpoint
    epochs: int | None = None

    def __post_init__(self) -> None:
        choice(self, "kind", LR_SCHEDULES)
        positive(self, "epochs", allow_none=True)
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup={self.warmup}: must be a fraction of training in [0, 1)")
        if self.kind == "constant" and self.warmup:
            raise ConfigError(f"warmup={self.warmup} needs kind=linear (a constant rate has no warm-up)")


@dataclass
class ConditionConfig:
    """Conditioning of the shared trunk on the auxiliaries' weights (src/models/conditioning.py), for
    ``method=conditional``: FiLM layers (a per-channel scale and shift) at the trunk's sites, computed by a small
    MLP from each auxiliary's log weight and a "dropped" flag, zero-initialised (the model starts unconditioned)."""

    # on by default exactly when the method draws the weights (method=conditional): src.config's resolver reads the
    # method's class; false with method=conditional is its control (the same random weights, no conditioning)
    enabled: bool = "${alphavil.conditions:${method._target_}}"  # type: ignore[assignment]
    hidden: int = 64  # width of the MLP's hidden layer
    sites: list[str] | None = None  # where FiLM acts, by the trunk's site names (null: every site of the trunk)
    # the sites a trunk offers, checked before any data loads (null: known only once the trunk is built)
    SITES: ClassVar[tuple[str, ...] | None] = None

    def __post_init__(self) -> None:
        positive(self, "hidden")
        if self.sites is not None and not self.sites:
            raise ConfigError("sites=[]: no site would be conditioned; give site names or null (every site)")
        if self.sites is not None and self.SITES is not None:
            if unknown := [s for s in self.sites if s not in self.SITES]:
                raise ConfigError(
                    f"sites={list(self.sites)}: {unknown[0]!r} is not a site of this trunk ({', '.join(self.SITES)})"
                )


@dataclass
class LeNetConditionConfig(ConditionConfig):
    SITES: ClassVar[tuple[str, ...] | None] = ("conv1", "conv2", "fc")  # src.models.lenet.LeNetTrunk.SITES


@dataclass
class LeNetConfig:
    _target_: str = "src.models.lenet.multi_lenet"
    _partial_: bool = True  # completed with the task specs
    hidden: int = 50
    head_hidden: int | None = 50
    dropout: float = 0.5
    condition: LeNetConditionConfig = field(default_factory=LeNetConditionConfig)

    def __post_init__(self) -> None:
        positive(self, "hidden")
        positive(self, "head_hidden", allow_none=True)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout={self.dropout}: must be in [0, 1)")


@dataclass
class ModelConfig:
    INPUTS: ClassVar[str] = ""  # what the model reads: a task group's DataModule must hold the same
    net: Any = MISSING
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_schedule: LRScheduleConfig = field(default_factory=LRScheduleConfig)


@dataclass
class LeNetModelConfig(ModelConfig):
    INPUTS: ClassVar[str] = "images"
    net: LeNetConfig = field(default_factory=LeNetConfig)


@dataclass
class EncoderNetConfig:
    _target_: str = "src.models.encoder.multi_encoder"
    _partial_: bool = True  # completed with the task specs
    pretrained: str = "${model.pretrained}"
    pooling: str = "cls"
    dropout: float = 0.1
    head_hidden: int | None = None
    condition: ConditionConfig = field(default_factory=ConditionConfig)  # sites: layer0, layer1, … (each layer)

    def __post_init__(self) -> None:
        choice(self, "pooling", ("cls", "mean"))
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout={self.dropout}: must be in [0, 1)")
        positive(self, "head_hidden", allow_none=True)


@dataclass
class EncoderModelConfig(ModelConfig):
    INPUTS: ClassVar[str] = "text"
    pretrained: str = "roberta-base"  # a Hub name or a local folder in Hugging Face format
    max_length: int = 128  # tokenizer truncation, read by the GLUE task config
    net: EncoderNetConfig = field(default_factory=EncoderNetConfig)
    optimizer: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(_target_="torch.optim.AdamW", lr=2e-5, weight_decay=0.01)
    )
    lr_schedule: LRScheduleConfig = field(default_factory=lambda: LRScheduleConfig(kind="linear", warmup=0.1))

    def __post_init__(self) -> None:
        positive(self, "max_length")


# --- trainer, paths, top level -------------------------------------------------------------------
@dataclass
class TrainerConfig:
    """Arguments of ``pytorch_lightning.Trainer`` that this framework supports."""

    _target_: str = "pytorch_lightning.Trainer"
    max_epochs: int = 10
    accelerator: str = "auto"  # a GPU when there is one
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: Any = "32-true"  # auto: bf16-mixed where the hardware computes bf16 (src/hardware.py:resolve_precision)
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    deterministic: bool = False
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    fast_dev_run: Any = False
    default_root_dir: str = "${paths.output_dir}"

    def __post_init__(self) -> None:
        positive(self, "max_epochs", "num_nodes", "log_every_n_steps")
        non_negative(self, "num_sanity_val_steps")


@dataclass
class PathsConfig:
    root_dir: str = "${alphavil.root:}"
    data_dir: str = "${oc.env:ALPHAVIL_DATA_DIR,${paths.root_dir}/data}"
    cache_dir: str = "${oc.env:ALPHAVIL_CACHE_DIR,${paths.root_dir}/.cache}"
    log_dir: str = "${paths.root_dir}/logs"
    output_dir: str = "${hydra:runtime.output_dir}"


# --- search (python -m src.search) -----------------------------------------------------------
STRATEGIES = ("grid", "halving", "hyperband", "tpe", "gp", "random", "regmix", "hybrid", "conditional")
PRUNERS = ("hyperband", "halving", "none")


@dataclass
class WeightSpaceConfig:
    """The auxiliaries' weights a search visits and a conditional model trains on (the target's is 1); 0 drops
    an auxiliary. One definition for both, so that ``method=conditional`` draws from the space a search searches."""

    # the grid every auxiliary's weight takes (grid, halving, hyperband; tpe samples from it); null: no weights are
    # searched and each trial runs the composed method (a search over `params` alone)
    weights: list[float] | None = field(default_factory=lambda: [0.0, 0.3, 1.0, 3.0])
    per_task: dict[str, Any] = field(default_factory=dict)  # auxiliary → its own grid of weights, over `weights`
    # a log range [low, high] instead of the grid, for sampled points (random pools, tpe, gp, regmix's proxies)
    low: float | None = None
    high: float | None = None
    zero: bool = True  # sampled points may drop an auxiliary (weight 0), as the grid's 0 does

    def __post_init__(self) -> None:
        grids = {"weights": self.weights or [], **{f"per_task.{t}": g for t, g in self.per_task.items()}}
        for name, values in grids.items():
            if not isinstance(values, list | tuple) or any(not 0 <= float(v) <= HUGE for v in values):
                raise ConfigError(f"{name}={values}: must be a list of finite weights >= 0 (at most {HUGE:g})")
            if name != "weights" and not values:
                raise ConfigError(f"{name}=[]: an empty grid leaves nothing to search")
        if (self.low is None) != (self.high is None):
            raise ConfigError(f"low={self.low}, high={self.high}: a weight range needs both bounds")
        if self.low is not None and not 0 < self.low < self.high <= HUGE:
            raise ConfigError(
                f"low={self.low}, high={self.high}: a log range needs 0 < low < high <= {HUGE:g} (0: set zero=true)"
            )


@dataclass
class SpaceConfig(WeightSpaceConfig):
    """What a search varies: the weights (:class:`WeightSpaceConfig`), the batching, other options."""

    batching: list[str] = field(default_factory=lambda: ["sampled"])  # task.batching of the trials
    params: dict[str, Any] = field(default_factory=dict)  # other options: key → [values] or {low, high, log}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.batching:
            raise ConfigError("batching=[]: give at least one of mixed, sampled")
        for b in self.batching:
            if b not in BATCHINGS:
                raise ConfigError(f"batching={list(self.batching)}: each must be one of {', '.join(BATCHINGS)}")
        for key, values in self.params.items():
            if isinstance(values, list | tuple) and not values:
                raise ConfigError(f"params.{key}=[]: an empty list leaves nothing to search")
            if isinstance(values, dict) and not ({"low", "high"} <= set(values) <= {"low", "high", "log", "int"}):
                raise ConfigError(f"params.{key}={values}: a range is {{low, high}} with optional log and int")
        if self.weights is not None and not self.weights and self.low is None and not self.params:
            raise ConfigError("weights=[] with no range and no params: the search space is empty")


@dataclass
class SearchConfig:
    """A weight search (src/search/): its strategy, space, and what it may spend (src/search/registry.py)."""

    strategy: str = "halving"
    # the search's folder: no time in its name, so the same command finds its search again and continues it
    dir: str = "${paths.log_dir}/search/${hydra:runtime.choices.task}/${hydra:runtime.choices.search}/seed${seed}"
    space: SpaceConfig = field(default_factory=SpaceConfig)
    eta: int = 3  # halving, hyperband and the pruners: a 1/eta share goes on at each rung
    min_epochs: int | None = None  # halving: the fewest epochs a trial trains (null: one rung per eta-fold cut)
    points: str = "grid"  # halving, hyperband: the pool is the grid, or n_points random points of the range
    n_points: int | None = None  # points=grid: a seeded random subset of the grid (null: all of it); random: 27
    max_runs: float = 3.0  # tpe, gp, random: stop proposing once this much compute (in full runs) is spent
    max_trials: int = 100  # tpe, gp, random: and after this many trials
    pruner: str = "hyperband"  # tpe, gp, random: Optuna's HyperbandPruner, SuccessiveHalvingPruner, or none
    proxies: int = 16  # regmix: random points trained for proxy_epochs
    proxy_epochs: int | None = None  # regmix: null is a tenth of the run (at least one epoch)
    candidates: int = 4096  # regmix: random points the regression picks its best from (with the grid's)
    source: str = "alphavil"  # hybrid: the learned method (any method= option) or relatedness (the probe)
    drop_below: float = 0.05  # hybrid: a learned weight below this (relative to the target's) drops the auxiliary
    # conditional: the conditional run's best-ranked points that go on to successive halving (null: λ* alone, as
    # one fixed-weight run)
    top: int | None = None
    # null: a journal file in the search folder; a database URL (sqlite:///…, postgresql://…) or a journal file
    # on a shared file system lets several workers share one study
    storage: str | None = None
    study_name: str = "search"
    seed: int = "${seed}"  # type: ignore[assignment]
    poll_seconds: float = 5.0  # several workers: how often one waits for a rung the others are finishing

    def __post_init__(self) -> None:
        choice(self, "strategy", STRATEGIES)
        choice(self, "points", ("grid", "random"))
        choice(self, "pruner", PRUNERS)
        if self.eta < 2:
            raise ConfigError(f"eta={self.eta}: must be an integer >= 2 (the share kept at each rung is 1/eta)")
        at_least(self, "min_epochs", 1, allow_none=True)
        at_least(self, "proxy_epochs", 1, allow_none=True)
        at_least(self, "n_points", 1, allow_none=True)
        at_least(self, "max_trials", 1)
        at_least(self, "proxies", 2)
        at_least(self, "candidates", 1)
        at_least(self, "top", 1, allow_none=True)
        if not 1 <= self.max_runs < math.inf:
            raise ConfigError(f"max_runs={self.max_runs}: must be at least 1 (one full run)")
        non_negative(self, "drop_below")
        positive(self, "poll_seconds")
        if self.space.weights is not None and self.space.low is None and self.strategy == "regmix":
            raise ConfigError("strategy=regmix samples weights from a range: set space.low and space.high")
        if self.points == "random" and self.space.low is None:
            raise ConfigError("points=random samples weights from a range: set space.low and space.high")


@dataclass
class LaunchConfig:
    """How the run was started, written by the entry point from Hydra's runtime (src/runtime.py ``pin``), so that a
    run reads its config and never Hydra's global state; not an option (a ``launch.`` override is refused)."""

    choices: dict[str, Any] = field(default_factory=dict)  # the option of each config group (task: glue_rte)
    overrides: list[str] = field(default_factory=list)  # the command line's overrides
    multirun: bool = False  # a job of a Hydra multirun
    sweep_group: str = "single"  # the multirun folder's name (a sweep is one W&B group), else single


@dataclass
class Config:
    task: Any = MISSING
    method: Any = MISSING
    model: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    test: bool = True  # evaluate the best-dev checkpoint on the test splits after fitting
    ckpt_path: str | None = "auto"  # a checkpoint to resume from; auto: the run folder's last.ckpt, if any
    run_name: str = "${hydra:runtime.choices.task}/${hydra:runtime.choices.method}/seed${seed}"
    search: Any = None  # python -m src.search's options (SearchConfig); src.run refuses them
    launch: LaunchConfig = field(default_factory=LaunchConfig)  # written by the entry point (src/runtime.py)


def check_tasks(group: str, available: Sequence[str], target: str, auxiliaries: Sequence[str]) -> None:
    """Reject a target or auxiliary outside the task group, duplicates, or the target listed twice."""
    where = f"task group {group!r} (tasks: {', '.join(available)})"
    if clash := [t for t in (target, *auxiliaries) if t in PHASES]:
        raise ValueError(
            f"task {clash[0]!r}: the names {', '.join(PHASES)} are reserved for the methods' own phases (αVIL's "
            "α-steps, ForkMerge's merge, post-training's target phase); name the task otherwise"
        )
    if target not in available:
        raise ValueError(f"task.target={target!r} is not in {where}")
    for aux in auxiliaries:
        if aux not in available:
            raise ValueError(f"task.auxiliaries contains {aux!r}, which is not in {where}")
    if target in auxiliaries:
        raise ValueError(f"task.auxiliaries contains the target {target!r}; list only the other tasks")
    if len(set(auxiliaries)) != len(auxiliaries):
        raise ValueError(f"task.auxiliaries has duplicates: {list(auxiliaries)}")
