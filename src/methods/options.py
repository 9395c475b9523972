"""Every method's options: the schema of ``method=<name>``, torch-free, so that composing a config (``--cfg job``,
a search's trial, the ConfigStore's registration) never imports a method's code.

A method's file reads its options as ``self.cfg.<option>`` from the class named here (its ``Config``); adding a
method is its file in ``src/methods/``, its options here (``_target_`` names the class, and so the
``base_<module>`` schema the YAML extends) and its YAML in ``conf/method/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.schema import (
    HUGE,
    ConfigError,
    MethodConfig,
    WeightSpaceConfig,
    at_least,
    below_one,
    choice,
    finite,
    non_negative,
    positive,
)

ALPHA_INIT = ("ones", "weights")
ALPHA_DOMAINS = ("box", "simplex")
WEIGHT_UPDATES = ("additive", "multiplicative", "replace")
DELTA_BASES = ("own", "target")
DELTA_DTYPES = ("auto", "float32", "bfloat16")  # auto: the parameters' dtype
PER = ("example", "batch")
FEATURES = ("hidden", "loss", "hidden+loss")
VARIANTS = ("unweighted", "weighted")
SIMILARITIES = ("cosine", "dot")


# --- alphavil --------------------------------------------------------------------------------------------------------
@dataclass
class AlphaVILConfig(MethodConfig):
    """Options of ``method=alphavil``.

    How many examples each task's block trains on is the run's budget (``task.budget``), not an option here:
    every method draws from the same one. Each epoch's α starts from the weights and becomes them (α
    persists), and no auxiliary's weight falls below ``w_min``, so every auxiliary's delta holds some of its
    data (at weight 0 a block's delta would be only the optimizer's momentum, which α would judge instead
    of the task). The choices and how they were made: docs and experiments/results/.
    """

    _target_: str = "src.methods.alphavil.AlphaVIL"
    alpha_steps: int = 10  # α-steps per epoch, one target-dev batch each
    alpha_lr: float = 0.1  # step size on ∂L_dev/∂α_t = <∇L_dev(θ + Σαδ), δ_t>
    alpha_init: str = "weights"  # weights | ones: where α starts each epoch
    alpha_domain: str = "box"  # box: α clamped to [alpha_min, alpha_max] | simplex: α ≥ 0, Σα = 1
    alpha_min: float = 0.0  # the box's bounds; on the simplex alpha_max caps the weights α_t/α_target
    alpha_max: float = 2.0
    weight_update: str = "replace"  # replace: α | additive: w + (α − 1) | multiplicative: w·α
    w_min: float = 0.05  # auxiliary weights never go below this (at 0 a task's delta holds none of its data)
    reset_optimizer: bool = True  # each task's block starts from the epoch-start optimizer state
    delta_dtype: str = "auto"  # auto (the parameters' dtype) | float32 | bfloat16: storage of the K deltas
    # own: θ + Σ_t α_t δ_t | target: each auxiliary's delta taken relative to the target's,
    # θ + α_target δ_target + Σ_aux α_t (δ_t − δ_target), so the drift every delta shares is counted once, not K+1
    # times, and an auxiliary's α prices what its block adds beyond the target's (docs/methods.md: why)
    delta_basis: str = "own"

    def __post_init__(self) -> None:
        at_least(self, "alpha_steps", 0)
        positive(self, "alpha_lr")
        finite(self, "alpha_min", "alpha_max")
        non_negative(self, "alpha_min", "w_min")
        if self.alpha_max > 100:
            raise ConfigError(
                f"alpha_max={self.alpha_max}: must be at most 100: α scales a task's delta, and beyond that the merged "
                "model leaves the region the deltas were taken in (its dev loss overflows)"
            )
        if not self.alpha_min < self.alpha_max:
            raise ConfigError(f"alpha_min={self.alpha_min}: must be below alpha_max={self.alpha_max}")
        if self.w_min > self.alpha_max:  # the floor would lift every auxiliary above what α can express
            raise ConfigError(f"w_min={self.w_min}: must be at most alpha_max={self.alpha_max}")
        choice(self, "alpha_init", ALPHA_INIT)
        choice(self, "alpha_domain", ALPHA_DOMAINS)
        choice(self, "weight_update", WEIGHT_UPDATES)
        choice(self, "delta_dtype", DELTA_DTYPES)
        choice(self, "delta_basis", DELTA_BASES)


# --- auto_lambda -----------------------------------------------------------------------------------------------------
@dataclass
class AutoLambdaConfig(MethodConfig):
    _target_: str = "src.methods.auto_lambda.AutoLambda"
    init: float = 0.1  # λ at the start, every task (official: autol_init 0.1)
    lr: float = 1e-4  # Adam's step size on λ (official dense-prediction default; 3e-4 for CIFAR-100)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        positive(self, "init", "lr", "eps")  # λ ≤ 0 would train a task against its own loss
        if self.init > HUGE:
            raise ConfigError(
                f"init={self.init}: must be at most {HUGE:g}: λ is a task's weight, and beyond {HUGE:g} the framework "
                "reads a weight as diverged"
            )
        if self.lr > 1:
            raise ConfigError(
                f"lr={self.lr}: must be at most 1: Adam moves λ by about lr each step, and λ starts at {self.init}; "
                "larger steps send a λ below 0 at once, ascending that task's loss"
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas={list(self.betas)}: must be two numbers in [0, 1)")


# --- conditional -----------------------------------------------------------------------------------------------------
@dataclass
class ConditionalConfig(MethodConfig):
    """Options of ``method=conditional``; the model's conditioning is ``model.net.condition``."""

    _target_: str = "src.methods.conditional.Conditional"
    space: WeightSpaceConfig = field(default_factory=WeightSpaceConfig)  # what λ is drawn from, as search.space
    per: str = "example"  # example: each example its own λ | batch: one λ per step
    reference: dict[str, float] = field(default_factory=dict)  # λ validated at in training; unlisted: 1
    score_examples: int | None = 500  # dev examples every point is ranked on (null: the whole dev split)
    top: int = 3  # best-ranked points scored again on the whole dev split; λ* is the best of them
    points: int = 81  # a range's points to score (seeded draws from the space); a grid scores all of its points

    def __post_init__(self) -> None:
        if isinstance(self.space, DictConfig):  # as instantiate passes it
            self.space = OmegaConf.to_container(self.space, resolve=True)
        if isinstance(self.space, dict):
            self.space = WeightSpaceConfig(**self.space)
        choice(self, "per", PER)
        at_least(self, "score_examples", 2, allow_none=True)
        at_least(self, "top", 1)
        at_least(self, "points", 1)
        if self.space.weights is None and self.space.low is None:
            raise ConfigError(
                "space.weights=null with no range (space.low, space.high): λ has nothing to be drawn from"
            )
        if self.space.low is None and not self.space.weights:
            raise ConfigError("space.weights=[]: an empty grid leaves λ nothing to be drawn from")
        for task, w in self.reference.items():
            if not 0 <= w < math.inf:
                raise ConfigError(f"reference.{task}={w}: must be a finite weight >= 0")


# --- diw -------------------------------------------------------------------------------------------------------------
@dataclass
class DIWConfig(MethodConfig):
    """Options of ``method=diw``."""

    _target_: str = "src.methods.diw.DIW"
    B: float = 10.0  # upper bound on each β_i
    eps: float = 0.1  # slack on the mean of β: |Σβ − n| ≤ nε
    features: str = "hidden"  # hidden | loss | hidden+loss
    kernel_bandwidth: Any = "median"  # median (heuristic) | a positive number σ
    solver_steps: int = 100  # FISTA iterations per solve
    update_every: int = 1  # solve every k steps; in between each task's examples get its last mean β

    def __post_init__(self) -> None:
        if not 1 <= self.B < math.inf:
            raise ConfigError(f"B={self.B}: must be a finite number >= 1 (β = 1 for every example must be feasible)")
        below_one(self, "eps")
        choice(self, "features", FEATURES)
        bw = self.kernel_bandwidth
        if bw != "median" and (isinstance(bw, bool) or not isinstance(bw, int | float) or not 1e-6 <= bw < math.inf):
            raise ConfigError(
                f"kernel_bandwidth={bw!r}: must be 'median' or a finite number >= 1e-6 (narrower, every kernel value "
                "underflows to 0 in float32 and the matching divides by zero)"
            )
        at_least(self, "solver_steps", 1)
        at_least(self, "update_every", 1)


# --- forkmerge -------------------------------------------------------------------------------------------------------
@dataclass
class ForkMergeConfig(MethodConfig):
    _target_: str = "src.methods.forkmerge.ForkMerge"
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])  # official grid
    merge_examples: int = 1000  # dev examples the merge search scores each candidate on

    def __post_init__(self) -> None:
        if not self.alphas or any(not 0 <= a <= 1 for a in self.alphas):
            raise ConfigError(
                f"alphas={list(self.alphas)}: must be a non-empty list of numbers in [0, 1] (the greedy search "
                "gives each next branch a·u, at most the mean λ of the branches placed, as the official grid does)"
            )
        at_least(self, "merge_examples", 1)


# --- gcs -------------------------------------------------------------------------------------------------------------
@dataclass
class GCSConfig(MethodConfig):
    _target_: str = "src.methods.gcs.GCS"
    variant: str = "unweighted"  # unweighted: 1[cos > 0] | weighted: max(cos, 0)

    def __post_init__(self) -> None:
        choice(self, "variant", VARIANTS)


# --- gradnorm --------------------------------------------------------------------------------------------------------
@dataclass
class GradNormConfig(MethodConfig):
    _target_: str = "src.methods.gradnorm.GradNorm"
    alpha: float = 1.5  # the paper's asymmetry α (1.5 on NYUv2; 0 equalises the gradient norms)
    lr: float = 0.025  # step size of the weights' gradient descent (ours)
    min_weight: float = 1e-3  # floor on a weight before the renormalisation (ours)

    def __post_init__(self) -> None:
        non_negative(self, "alpha")
        positive(self, "lr", "min_weight")
        if self.min_weight >= 1:
            raise ConfigError(
                f"min_weight={self.min_weight}: must be below 1, the weights' mean (they sum to the number of tasks): "
                "at or above it every weight is the floor, which is uniform weighting"
            )
        if self.lr > 1:
            raise ConfigError(
                f"lr={self.lr}: must be at most 1: a step of more than one weight per unit of gradient norm throws "
                "every weight but one to the floor at the first update"
            )


# --- hydalearn -------------------------------------------------------------------------------------------------------
@dataclass
class HydaLearnConfig(MethodConfig):
    _target_: str = "src.methods.hydalearn.HydaLearn"
    lookahead_lr: float | None = None  # η of the trial updates; null: the optimizer's learning rate
    max_weight: float = 10.0  # cap on an auxiliary's weight

    def __post_init__(self) -> None:
        positive(self, "lookahead_lr", allow_none=True)
        positive(self, "max_weight")
        if self.max_weight > HUGE:
            raise ConfigError(
                f"max_weight={self.max_weight}: must be at most {HUGE:g}: beyond it the framework reads an "
                "auxiliary's weight (against the target's 1) as diverged"
            )
        if self.lookahead_lr is not None and self.lookahead_lr > 1:
            raise ConfigError(
                f"lookahead_lr={self.lookahead_lr}: must be at most 1: a trial step of more than the whole gradient "
                "leaves the region where the target's loss drop measures anything (every gain turns negative)"
            )


# --- ol_aux ----------------------------------------------------------------------------------------------------------
@dataclass
class OLAuxConfig(MethodConfig):
    _target_: str = "src.methods.ol_aux.OLAux"
    beta: float = 1e-4  # step size on the weights
    horizon: int = 5  # steps between weight updates (N in the paper)
    similarity: str = "cosine"  # cosine (LibMTL) | dot (the paper: lr · inner product)

    def __post_init__(self) -> None:
        positive(self, "beta")
        if self.beta > 1:
            raise ConfigError(
                f"beta={self.beta}: must be at most 1: a weight moves by beta times a sum of up to horizon cosines "
                "each update; beyond 1 the first update can reverse every weight"
            )
        at_least(self, "horizon", 1)
        choice(self, "similarity", SIMILARITIES)


# --- pcgrad ----------------------------------------------------------------------------------------------------------
@dataclass
class PCGradConfig(MethodConfig):
    _target_: str = "src.methods.pcgrad.PCGrad"


# --- post_train ------------------------------------------------------------------------------------------------------
@dataclass
class PostTrainConfig(MethodConfig):
    _target_: str = "src.methods.post_train.PostTrain"
    aux_epochs: int | None = None  # epochs on the auxiliaries; null: half of trainer.max_epochs
    reset_optimizer: bool = True  # the target's phase starts with a fresh optimizer state

    def __post_init__(self) -> None:
        at_least(self, "aux_epochs", 0, allow_none=True)


# --- single_task -----------------------------------------------------------------------------------------------------
@dataclass
class SingleTaskConfig(MethodConfig):
    _target_: str = "src.methods.single_task.SingleTask"


# --- slgrad ----------------------------------------------------------------------------------------------------------
@dataclass
class SLGradConfig(MethodConfig):
    _target_: str = "src.methods.slgrad.SLGrad"
    chunk_size: int | None = None  # examples per vectorised per-example backward (bounds memory); null: the batch

    def __post_init__(self) -> None:
        positive(self, "chunk_size", allow_none=True)


# --- static ----------------------------------------------------------------------------------------------------------
@dataclass
class StaticConfig(MethodConfig):
    _target_: str = "src.methods.static.Static"
    weights: dict[str, float] = field(default_factory=dict)  # task → weight; the target, if not listed, gets 1
    aux_weight: float = 1.0  # the weight of every auxiliary not listed in weights (an oracle grid sweeps it)

    def __post_init__(self) -> None:
        for task, w in {**self.weights, "aux_weight": self.aux_weight}.items():
            if not 0 <= w <= HUGE:
                name = task if task == "aux_weight" else f"weights.{task}"
                raise ConfigError(
                    f"{name}={w}: must be a number in [0, {HUGE:g}] (against the target's 1, a weight beyond "
                    f"{HUGE:g} leaves the target nothing: the framework reads it as a diverged weighting)"
                )


# --- uncertainty -----------------------------------------------------------------------------------------------------
@dataclass
class UncertaintyConfig(MethodConfig):
    _target_: str = "src.methods.uncertainty.Uncertainty"
    init_log_variance: float = -0.5  # s_t at the start (LibMTL's UW); weight 1 / (2·exp(s)) ≈ 0.82

    def __post_init__(self) -> None:
        finite(self, "init_log_variance")
        if abs(self.init_log_variance) > 20:
            raise ConfigError(
                f"init_log_variance={self.init_log_variance}: must be within [-20, 20]: the weight 1 / (2·exp(s)) "
                "is then between 1e-9 and 2e8; beyond, the first steps overflow or train nothing"
            )


# --- uniform ---------------------------------------------------------------------------------------------------------
@dataclass
class UniformConfig(MethodConfig):
    _target_: str = "src.methods.uniform.Uniform"


# --- upgrad ----------------------------------------------------------------------------------------------------------
@dataclass
class UPGradConfig(MethodConfig):
    _target_: str = "src.methods.upgrad.UPGrad"
