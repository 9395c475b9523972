"""Every config composes; bad configs fail before any data loads, naming the key and the value."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from src.config import ConfigError, validate
from tests.conftest import CONF, ROOT, compose_config, config_options

GROUPS = ["task", "method", "model", "trainer", "logger", "callbacks", "paths"]
options = config_options


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_config_composes_and_validates(group, option, tmp_path):
    # a text encoder is validated with a text task group (on MultiMNIST, the default, it is refused)
    task = ["task=glue_rte"] if (group, option) in (("model", "encoder"), ("model", "minilm")) else []
    if (group, option) == ("task", "text"):  # your own tasks: a target and one entry, beside an encoder
        entry = "{data_files:{train:/x/a.csv},text:[review],label:stars}"  # files are read when the data loads
        task = ["model=minilm", "task.target=stars", f"+task.tasks.stars={entry}"]
    if (group, option) == ("task", "images"):
        task = ["task.target=top", "+task.tasks.top={data_files:{train:/x/a.csv},image:path,label:top}"]
    cfg = compose_config([f"{group}={option}", *task], output_dir=tmp_path)
    validate(cfg)


@pytest.mark.parametrize("task", [t for t in options("task") if t not in ("text", "images")])  # blocks to include
def test_task_picks_its_model_and_cli_still_overrides(task, tmp_path):
    cfg = compose_config([f"task={task}"], output_dir=tmp_path)
    expected = "lenet" if task.startswith("multimnist") else "multi_encoder"
    assert cfg.model.net._target_.endswith(expected)
    other = "minilm" if task.startswith("multimnist") else "lenet"
    if (CONF / "model" / f"{other}.yaml").exists():
        cfg = compose_config([f"task={task}", f"model={other}"], output_dir=tmp_path)
        assert not cfg.model.net._target_.endswith(expected)


def test_unknown_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="alpha_lrr"):
        compose_config(["method.alpha_lrr=0.1"])


def test_unknown_task_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="nope"):
        compose_config(["task=nope"])


def test_wrong_type_fails_at_composition():
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError), match="batch_size"):
        compose_config(["task.batch_size=many"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("task.target=top", "task.target='top' is not in task group 'multimnist'"),
        ("task.auxiliaries=[right,up]", "contains 'up'"),
        ("task.auxiliaries=[left]", "contains the target 'left'"),
        ("task.batch_size=-4", "task.batch_size=-4: must be a positive, finite number"),
        ("task.max_train_examples=0", "task.max_train_examples=0"),
        ("task.dev_fraction=1.5", "task.dev_fraction=1.5: must be a fraction in (0, 1]"),
        ("task.dev_fraction=0", "task.dev_fraction=0"),
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1.0"),
        ("model.optimizer.lr=nan", "model.optimizer.lr=nan"),
        ("model.optimizer.lr=inf", "model.optimizer.lr=inf"),
        ("model.optimizer.weight_decay=inf", "model.optimizer.weight_decay=inf"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("seed=-1", "seed=-1"),
    ],
)
def test_bad_values_name_the_key_and_value(override, message, tmp_path):
    cfg = compose_config([override], output_dir=tmp_path)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert message in str(e.value)


@pytest.mark.slow
def test_bad_config_exits_non_zero_before_loading_data(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.run",
            "task.target=top",
            f"paths.data_dir={tmp_path}/nothing",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "task.target='top' is not in task group 'multimnist'" in proc.stderr
    assert "MNIST file" not in proc.stderr  # it failed before looking for data
    assert not (tmp_path / "run").exists()  # nothing was written: no run folder either


# One value outside its domain for every option of every method (a new option must be added here).
OUT_OF_DOMAIN = {
    "alphavil": {
        "alpha_steps": "-1",
        "alpha_lr": "inf",
        "alpha_init": "zeros",
        "alpha_domain": "sphere",
        "alpha_min": "-1",
        "alpha_max": "nan",
        "weight_update": "max",
        "w_min": "5",  # above alpha_max
        "reset_optimizer": "maybe",
        "delta_dtype": "float16",
        "delta_basis": "mean",
    },
    "auto_lambda": {"init": "-1", "lr": "0", "betas": "[0.9,1.5]", "eps": "0"},
    "diw": {
        "B": "0.5",
        "eps": "1",
        "features": "pixels",
        "kernel_bandwidth": "-1",
        "solver_steps": "0",
        "update_every": "0",
    },
    "forkmerge": {"alphas": "[]", "merge_examples": "0"},
    "gcs": {"variant": "sometimes"},
    "hydalearn": {"lookahead_lr": "-1", "max_weight": "inf"},
    "gradnorm": {"alpha": "-1", "lr": "0", "min_weight": "-1"},
    "slgrad": {"chunk_size": "0"},
    "ol_aux": {"beta": "0", "horizon": "0", "similarity": "l1"},
    "post_train": {"aux_epochs": "-1", "reset_optimizer": "maybe"},
    "static": {"weights": "{right: -1}", "aux_weight": "inf"},
    "conditional": {
        "space": "{low: 3.0, high: 1.0}",  # a reversed range
        "per": "step",
        "reference": "{right: -1}",
        "score_examples": "1",
        "top": "0",
        "points": "0",
    },
    "uncertainty": {"init_log_variance": "inf"},
}


def method_options(method: str) -> set[str]:
    from dataclasses import fields

    from tests.conftest import method_class

    return {f.name for f in fields(method_class(method).Config) if not f.name.startswith("_")}


@pytest.mark.parametrize("method", options("method"))
def test_every_method_option_has_an_out_of_domain_case(method):
    assert method_options(method) == set(OUT_OF_DOMAIN.get(method, {}))


@pytest.mark.parametrize(
    "method,option,value", [(m, o, v) for m, cases in OUT_OF_DOMAIN.items() for o, v in cases.items()]
)
def test_every_method_option_outside_its_domain_is_refused_by_name(method, option, value, tmp_path):
    with pytest.raises((ConfigError, ConfigCompositionException, ValidationError)) as refused:
        validate(compose_config([f"method={method}", f"method.{option}={value}"], output_dir=tmp_path))
    text = f"{refused.value} {refused.value.__cause__}"
    assert f"{option}=" in text or f"method.{option}" in text, text


# Every numeric option of task, model and trainer, with a value outside its domain.
OUT_OF_DOMAIN_OPTIONS = {
    "task.batch_size": "0",
    "task.eval_batch_size": "-1",
    "task.max_train_examples": "0",
    "task.max_eval_examples": "0",
    "task.dev_examples": "0",
    "task.train_examples": "{left: 0}",
    "task.budget_fraction": "1.5",
    "task.budget_examples": "{right: -5}",
    "task.temperature": "0.5",
    "task.dev_fraction": "0",
    "task.num_workers": "-1",
    "seed": "-1",
    "model.optimizer.lr": "nan",
    "model.optimizer.weight_decay": "-0.1",
    "model.net.hidden": "0",
    "model.net.head_hidden": "-3",
    "model.net.dropout": "1",
    "trainer.max_epochs": "0",
    "trainer.num_nodes": "0",
    "trainer.log_every_n_steps": "0",
    "trainer.num_sanity_val_steps": "-1",
}


@pytest.mark.parametrize("key,value", sorted(OUT_OF_DOMAIN_OPTIONS.items()))
def test_every_numeric_option_outside_its_domain_is_refused_by_name(key, value, tmp_path):
    with pytest.raises((ConfigError, ConfigCompositionException, ValidationError)) as refused:
        validate(compose_config([f"{key}={value}"], output_dir=tmp_path))
    name = key.rsplit(".", 1)[-1]
    assert f"{name}=" in str(refused.value) or f"{name}." in str(refused.value), str(refused.value)


def test_the_numeric_option_table_covers_every_numeric_option(tmp_path):
    from dataclasses import fields

    from omegaconf import OmegaConf

    cfg = compose_config([], output_dir=tmp_path)
    numeric = {"int", "float", "int | None", "float | None", "dict[str, int]", "dict[str, float]"}
    found = {"seed"}
    for group, node in (("task", cfg.task), ("model", cfg.model), ("model.optimizer", cfg.model.optimizer),
                        ("model.net", cfg.model.net), ("trainer", cfg.trainer)):  # fmt: skip
        found |= {f"{group}.{f.name}" for f in fields(OmegaConf.get_type(node)) if str(f.type) in numeric}
    assert found - {"task.seed"} == set(OUT_OF_DOMAIN_OPTIONS)  # task.seed is ${seed}


# --- configuration is data ---------------------------------------------------------------------------------
def _mapping_paths(node, path: str = ""):
    """Every mapping below ``node`` (the node itself included), by dotted path."""
    from omegaconf import DictConfig

    yield path
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none() and key != "_target_":
            yield from _mapping_paths(child, f"{path}.{key}" if path else str(key))


# the groups with many options and fields (seconds each) in the slow set
@pytest.mark.parametrize(
    "group",
    [
        *(pytest.param(g, marks=pytest.mark.slow) for g in ("task", "method", "model")),
        "trainer",
        "logger",
        "callbacks",
        "paths",
    ],
)
def test_a_nested_target_in_any_field_of_any_option_runs_nothing(group, tiny_data, tmp_path):
    """A payload under every mapping of every option of ``group``: refused before anything is built."""
    from omegaconf import OmegaConf

    from src.config import ConfigError
    from src.train import train
    from tests.conftest import TINY, config_options

    marker = tmp_path / "marker"
    payload = f"{{_target_: shutil.copyfile, _args_: [{tiny_data}/mnist/t10k-labels-idx1-ubyte.gz, {marker}]}}"
    base = [*TINY, f"paths.data_dir={tiny_data}", f"paths.cache_dir={tmp_path}/cache"]
    tried = 0
    for option in config_options(group):
        try:
            cfg = compose_config([*base, f"{group}={option}"], output_dir=tmp_path / "run")
        except ConfigCompositionException:  # an option that needs others (a search's own group)
            continue
        node = cfg[group]
        if node is None or not OmegaConf.is_dict(node):
            continue
        for path in _mapping_paths(node):
            where = f"{group}.{path}" if path else group
            try:
                cfg = compose_config([*base, f"{group}={option}", f"+{where}.payload={payload}"], tmp_path / "run")
            except Exception:  # the schema refuses the key: nothing to build
                continue
            tried += 1
            with pytest.raises(ConfigError, match=r"_target_"):
                train(cfg)
            assert not marker.exists(), f"{group}={option}: the payload under {where} ran"
    assert tried, f"no field of {group} takes a mapping: the test tried nothing"


def test_an_option_that_is_a_path_into_another_group_is_refused(tmp_path):
    """`task=../debug/tiny` would follow Hydra into the debug group and run without a task of its own."""
    from src.config import ConfigError

    cfg = compose_config(["task=../debug/tiny"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"task=../debug/tiny: an option of the task group is a name in conf/task/"):
        validate(cfg)


@pytest.mark.parametrize("name", ["alpha", "merge", "finetune"])
def test_a_task_named_like_a_methods_phase_is_refused(name):
    """αVIL's α-steps, ForkMerge's merge and post-training's target phase name their steps' block: a task of that
    name would be read as the phase (αVIL then fails on a KeyError deep in a step)."""
    from src.schema import check_tasks

    with pytest.raises(ValueError, match=f"task '{name}': the names alpha, merge, finetune are reserved"):
        check_tasks("text", ["stars", name], "stars", [name])
    with pytest.raises(ValueError, match="reserved"):
        check_tasks("text", ["stars", name], name, ["stars"])


def test_composing_a_config_imports_no_torch_lightning_or_transformers():
    """`python -m src.run ... --cfg job` and a config composed for a search's trial import only the schemas: every
    method's options live torch-free in src/methods/options.py, and training's imports wait for src.train."""
    code = (
        "import sys, src.config, src.run; "
        "print(sorted(m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_methods_options_are_the_schema_its_yaml_extends_and_its_class_reads():
    from hydra.utils import get_class

    from src.config import method_schemas

    schemas = method_schemas()
    assert sorted(schemas) == sorted(
        p.stem
        for p in (ROOT / "src/methods").glob("*.py")
        if (CONF / "method" / p.name.replace(".py", ".yaml")).exists()
    )
    for name, schema in schemas.items():
        assert get_class(schema._target_).Config is schema, name
        assert f"base_{name}" in (CONF / "method" / f"{name}.yaml").read_text()


def test_the_glue_presets_are_the_glue_tasks():
    from src.data.glue import TASKS
    from src.schema import GLUETaskConfig

    assert set(GLUETaskConfig.DEFAULT_AUXILIARIES) == set(TASKS)
    assert set(config_options("task")) >= {f"glue_{t}" for t in TASKS}
    for target, auxiliaries in GLUETaskConfig.DEFAULT_AUXILIARIES.items():
        assert set(auxiliaries) <= set(TASKS) - {target}
