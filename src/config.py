"""Registration of the config schemas in Hydra's ConfigStore, and the validation run before any data loads.

The schemas themselves live in :mod:`src.schema` (which imports nothing from ``src``) and, for the methods, in
:mod:`src.methods.options` (torch-free: registering them imports no method's code); each YAML in ``conf/``
extends one of them through its defaults list (``defaults: [base_alphavil]``), so an unknown key fails at
composition time. :func:`validate` builds the dataclasses from the composed config, which runs each schema's
checks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_origin

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from src.schema import (
    Config,
    ConfigError,
    EncoderModelConfig,
    GLUETaskConfig,
    LeNetModelConfig,
    MethodConfig,
    PathsConfig,
    SearchConfig,
    TaskConfig,
    TrainerConfig,
)

log = logging.getLogger(__name__)

__all__ = ["ConfigError", "register", "validate"]

ROOT = Path(__file__).resolve().parents[1]


def run_id() -> str:
    """A short id for a run folder: the Slurm job id when there is one, else 6 random hex digits."""
    import os
    import secrets

    return os.environ.get("SLURM_JOB_ID") or secrets.token_hex(3)


def conditions(method_target: str) -> bool:
    """Whether the method draws the auxiliary weights a conditioned model reads (``model.net.condition.enabled``'s
    default): a weighting method's class says so with ``conditions_model``."""
    from hydra.utils import get_class

    if not str(method_target).startswith("src.methods."):  # check_targets names what else stands there
        return False
    return bool(getattr(get_class(method_target), "conditions_model", False))


def task_group(datamodule_target: str) -> str:
    """The task group (``multimnist``, ``glue``) of a DataModule class path."""
    from hydra.utils import get_class

    return get_class(datamodule_target).GROUP


def method_schemas() -> dict[str, type]:
    """Every method's options (:mod:`src.methods.options`), by the module its ``_target_`` names: ``base_alphavil``
    is the schema of ``src.methods.alphavil.AlphaVIL``. Found without importing any method's code (torch)."""
    import src.methods.options  # noqa: F401  (defines the subclasses)

    return {t.rsplit(".", 2)[-2]: s for s in _descendants(MethodConfig) if (t := s.__dict__.get("_target_"))}


def task_schemas() -> dict[str, type]:
    """Every task group's schema: each subclass of :class:`TaskConfig` that names its group
    (``GROUP``); adding a task group is its DataModule, its schema and its YAML."""
    return {s.GROUP: s for s in _descendants(TaskConfig) if s.__dict__.get("GROUP")}


def _descendants(base: type) -> list[type]:
    """Every subclass of ``base``, at any depth."""
    found, todo = [], list(base.__subclasses__())
    while todo:
        found.append(schema := todo.pop())
        todo += schema.__subclasses__()
    return found


def _schema(schema: type) -> DictConfig:
    """``schema`` as a config whose mapping fields accept new keys from the command line.

    Hydra composes in struct mode, where ``'method.weights={right: 0.3}'`` would be refused as adding a
    key to an empty mapping; the fields typed ``dict[...]`` (task → value maps) are opened locally, so
    only they take new keys and a typo anywhere else still fails.
    """
    node = OmegaConf.structured(schema)
    _open_mappings(node)
    return node


def _open_mappings(node: DictConfig) -> None:
    for name in node:
        child = node._get_node(name)
        if not isinstance(child, DictConfig):
            continue
        if child._metadata.ref_type is not Any and get_origin(child._metadata.ref_type) is dict:
            OmegaConf.set_struct(child, False)
        elif is_dataclass(child._metadata.object_type):  # a nested schema (search.space)
            _open_mappings(child)


def register() -> None:
    """Register the resolvers and schemas (idempotent; called on import)."""
    OmegaConf.register_new_resolver("alphavil.root", lambda: str(ROOT), replace=True)
    OmegaConf.register_new_resolver("alphavil.task_group", task_group, replace=True)
    OmegaConf.register_new_resolver("alphavil.run_id", run_id, replace=True, use_cache=True)
    OmegaConf.register_new_resolver("alphavil.conditions", conditions, replace=True)
    OmegaConf.register_new_resolver(
        "alphavil.glue_auxiliaries",
        lambda target: ListConfig(list(GLUETaskConfig.DEFAULT_AUXILIARIES.get(target, []))),
        replace=True,
    )
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name, schema in task_schemas().items():  # base_multimnist, base_glue, ...: every task group's schema
        cs.store(group="task", name=f"base_{name}", node=_schema(schema))
    for name, schema in task_schemas().items():  # task=glue_rte is task=glue with task.target=rte
        for target in schema.__dict__.get("DEFAULT_AUXILIARIES", {}):  # its own presets, not a parent group's
            alias = {"defaults": [name], "task": {"target": target}}
            cs.store(group="task", name=f"{name}_{target}", node=alias, package="_global_")
    cs.store(group="model", name="base_encoder", node=EncoderModelConfig)
    for name, schema in method_schemas().items():
        cs.store(group="method", name=f"base_{name}", node=_schema(schema))
    cs.store(group="model", name="base_lenet", node=LeNetModelConfig)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    # global: a search runs in its own folder (search.dir), with no time in its name, so the same command finds
    # its search again and continues it
    search = {"search": _schema(SearchConfig), "hydra": {"run": {"dir": "${search.dir}"}}}
    cs.store(group="search", name="base_search", node=search, package="_global_")


def validate(cfg: DictConfig) -> None:
    """Build every schema in ``cfg`` (running its checks); raise :class:`ConfigError` naming the key."""
    check_targets(cfg)  # first: nothing below may name code to run
    for group in ("task", "method", "model", "trainer", "logger", "callbacks", "paths", "search", "experiment"):
        if (picked := _chosen(cfg, group)) and (".." in picked or picked.startswith("/")):
            raise ConfigError(
                f"{group}={picked}: an option of the {group} group is a name in conf/{group}/ (or a --config-dir's), "
                "not a path into another group"
            )
    if unknown := sorted(set(cfg) - {f.name for f in fields(Config)} - {"hydra"}):
        known = ", ".join(f.name for f in fields(Config))
        raise ConfigError(f"{unknown[0]}: not an option (the top-level options: {known}); a run would ignore it")
    for group in ("task", "method", "model", "trainer", "paths"):
        _validate_node(cfg[group], group)
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed={cfg.seed}: must be an integer in [0, 2**32) (numpy's and the data's seeds)")
    _check_model_reads_task(cfg)
    _check_batching(cfg)
    _check_conditioning(cfg)


def _chosen(cfg: DictConfig, group: str) -> str | None:
    """The option the command line chose for ``group`` (``cfg.launch``, src/runtime.py); ``None`` unpinned."""
    return OmegaConf.select(cfg, f"launch.choices.{group}", default=None)


def _kinds() -> dict[str, tuple[str, Any]]:
    """Where a ``_target_`` may stand in a composed config, and what it must name (a check on the object)."""
    import torch
    from lightning_fabric.loggers import Logger
    from pytorch_lightning import Callback, Trainer

    from src.data.base import MultiTaskDataModule
    from src.methods.base import WeightingMethod

    def subclass(base: type) -> Any:
        return lambda obj: isinstance(obj, type) and issubclass(obj, base)

    def model(obj: Any) -> bool:  # the trunk-and-heads builders of src/models
        return callable(obj) and getattr(obj, "__module__", "").startswith("src.models.")

    return {
        "task": ("a DataModule of this framework (src.data)", subclass(MultiTaskDataModule)),
        "method": ("a weighting method (src.methods)", subclass(WeightingMethod)),
        "model.net": ("a model builder of src.models", model),
        "model.optimizer": ("a torch.optim.Optimizer class", subclass(torch.optim.Optimizer)),
        "trainer": ("pytorch_lightning.Trainer", subclass(Trainer)),
        "logger.*": ("a Lightning Logger class", subclass(Logger)),
        "callbacks.*": ("a Lightning Callback class", subclass(Callback)),
    }


def _targets(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every ``(path, value)`` of a ``_target_`` key below ``node``, interpolations unresolved."""
    if isinstance(node, DictConfig):
        if node._is_missing() or node._is_none():
            return
        for key in node:
            child = node._get_node(key)
            here = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield path, child._value()
            else:
                yield from _targets(child, here)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _targets(node._get_node(i), f"{path}[{i}]")


def check_targets(cfg: DictConfig) -> None:
    """Configuration is data: a ``_target_`` stands only where the framework builds an object, and names a class
    of the kind expected there; any other (nested in a field, in a logger's arguments, in a task's entry) is
    refused before anything is instantiated, since instantiating it would run whatever it names."""
    from hydra.utils import get_object

    kinds = _kinds()
    for path, target in _targets(cfg, ""):
        if path.split(".", 1)[0] == "hydra":  # Hydra's own (launchers, sweepers)
            continue
        pattern = next(
            (p for p in kinds if p == path or (p.endswith(".*") and path.count(".") == 1 and path.startswith(p[:-1]))),
            None,
        )
        if pattern is None:
            raise ConfigError(
                f"{path}._target_={target}: a _target_ here would be built, running what it names; configuration "
                f"is data, and only these keys name objects: {', '.join(f'{p}._target_' for p in kinds)}"
            )
        what, check = kinds[pattern]
        try:
            obj = get_object(str(target))
        except Exception as e:
            raise ConfigError(f"{path}._target_={target}: cannot be imported ({type(e).__name__}: {e})") from None
        if not check(obj):
            raise ConfigError(f"{path}._target_={target}: must name {what}")
    for section in ("logger", "callbacks"):
        for name, entry in (cfg.get(section) or {}).items():
            if not (isinstance(entry, DictConfig) and "_target_" in entry):
                raise ConfigError(f"{section}.{name}: each entry needs a _target_ naming {kinds[section + '.*'][0]}")


def _check_batching(cfg: DictConfig) -> None:
    """A rule that compares the tasks' gradients in each step cannot run on one task's batch per step."""
    from hydra.utils import get_class

    method = get_class(cfg.method._target_)
    if method.schedule is not None and cfg.task.batching != "mixed":  # blocks, branches, the target alone
        log.warning(
            "task.batching=%s is not read by method %s, whose steps follow its own schedule (%s)",
            cfg.task.batching,
            method.__name__,
            method.schedule,
        )
    takes = (*method.batchings, "matched") if "mixed" in method.batchings else method.batchings
    if method.schedule is None and cfg.task.batching not in takes:
        raise ConfigError(
            f"task.batching={cfg.task.batching}: method {method.__name__} takes {' or '.join(takes)} "
            "batching only (its rule needs a batch of every task in each step); use task.batching=mixed or matched"
        )


def _check_conditioning(cfg: DictConfig) -> None:
    """A conditioned model reads weights only a conditional method draws; a conditional method needs a model that
    can be conditioned (or says it runs its unconditioned control)."""
    from hydra.utils import get_class

    method = get_class(cfg.method._target_)
    condition = cfg.model.net.get("condition") if isinstance(cfg.model.get("net"), DictConfig) else None
    if condition is not None and condition.enabled and not getattr(method, "conditions_model", False):
        raise ConfigError(
            f"model.net.condition.enabled=true: method {method.__name__} draws no weights for the conditioning to read "
            "(only method=conditional does); leave model.net.condition.enabled out"
        )
    if condition is None and getattr(method, "conditions_model", False):
        raise ConfigError(
            f"method={_chosen(cfg, 'method') or method.__name__}: the model ({cfg.model.net.get('_target_')}) has no "
            "model.net.condition option, so it cannot be conditioned on the weights; use model=lenet, model=minilm or "
            "model=encoder"
        )


def _check_model_reads_task(cfg: DictConfig) -> None:
    """A model for images on text tasks (or the reverse) would fail only at the first step, deep inside it."""
    from hydra.utils import get_class

    datamodule = get_class(cfg.task._target_)
    reads = getattr(OmegaConf.get_type(cfg.model), "INPUTS", "")
    if reads and datamodule.INPUTS and reads != datamodule.INPUTS:
        suggestion = {"images": "model=lenet", "text": "model=minilm or model=encoder"}.get(datamodule.INPUTS, "")
        raise ConfigError(
            f"the model reads {reads} but task group {datamodule.GROUP!r} holds {datamodule.INPUTS}: use {suggestion}"
        )


def _validate_node(node: DictConfig, path: str) -> None:
    for key in node:  # children first, so an error names the deepest key
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _validate_node(child, f"{path}.{key}")
    schema = OmegaConf.get_type(node)
    if is_dataclass(schema):
        options = {f.name for f in fields(schema)}
        if unknown := [k for k in node if k not in options]:  # `+method.typo=1` adds a key the schema lacks
            known = sorted(o for o in options if not o.startswith("_"))
            raise ConfigError(
                f"{path}.{unknown[0]}: not an option of {path} ({schema.__module__}.{schema.__qualname__}); "
                + (f"its options: {', '.join(known)}" if known else "it takes none")
            )
        try:
            OmegaConf.to_object(node)
        except ConfigError as e:
            raise ConfigError(f"{path}.{e}") from None
        except Exception as e:  # OmegaConf's own errors (a bad interpolation, a missing value)
            raise ConfigError(f"invalid config at {path}: {e}") from None


register()
