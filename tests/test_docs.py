"""The lists in the docs that can go stale are checked against the code: methods, make targets, config groups."""

from __future__ import annotations

import re

import pytest

from tests.conftest import CONF, ROOT, config_options

README = (ROOT / "README.md").read_text()
EXPERIMENTS = ROOT / "experiments" / "conf" / "experiment"


def table_row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))


def groups() -> dict[str, list[str]]:
    """Every config group a user picks from, with its options."""
    found = {g.name: config_options(g.name) for g in CONF.iterdir() if g.is_dir() and g.name not in ("hydra", "local")}
    found["hydra/launcher"] = sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml"))
    found["experiment"] = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
    return found


@pytest.mark.parametrize("group,options", sorted(groups().items()))
def test_the_readme_configuration_table_lists_every_group_and_option(group, options):
    row = table_row(README, f"`{group}`")
    cell = row.split(" | ")[1]
    named = [o for o in options if not (o.startswith("glue_") and "`glue_<target>`" in cell)]  # one per GLUE task
    missing = [o for o in named if f"`{o}`" not in cell]
    assert not missing, f"README's {group} row lacks {missing}"


@pytest.mark.parametrize("method", config_options("method"))
def test_every_method_is_in_the_readme_and_in_docs_methods(method):
    first_cells = [line.split(" | ")[0] for line in README.splitlines() if line.startswith("| `")]
    assert any(f"`{method}`" in cell for cell in first_cells), "the README's method table lacks it"
    methods = (ROOT / "docs" / "methods.md").read_text()
    assert re.search(rf"^- `{method}`", methods, re.M), f"docs/methods.md describes no {method}"


def test_the_readme_lists_every_make_target():
    targets = re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), re.M)
    listed = re.search(r"`make help` lists every target: `([^`]+)`", README.replace("\n", " ")).group(1).split()
    assert listed == targets


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves():
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    linked = re.findall(r"\]\((docs/[^)#]+)\)", README)
    assert sorted({link.removeprefix("docs/") for link in linked if link.endswith(".md")}) == pages
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_report_orders_every_method():
    from experiments.report import METHOD_ORDER

    assert sorted(METHOD_ORDER) == config_options("method")


@pytest.mark.slow
def test_the_readmes_30_second_run_writes_what_the_readme_shows(real_data, tmp_path):
    """The README's debug=tiny command, run as written (on the local MNIST), reproduces its JSON to the digit."""
    import json
    import subprocess
    import sys

    shown = json.loads(re.search(r"## A 30-second run.*?```json\n(.*?)```", README, re.S).group(1))
    env = {**__import__("os").environ, "ALPHAVIL_DATA_DIR": str(real_data)}
    subprocess.run(
        [sys.executable, "-m", "src.run", "debug=tiny", "method=alphavil", f"paths.log_dir={tmp_path}"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    (path,) = tmp_path.glob("debug/multimnist_left/alphavil/seed0_*/results.json")
    got = json.loads(path.read_text())
    for key, value in shown.items():
        if isinstance(value, float):
            assert round(got[key], 3) == value, key
        elif key == "weights":
            assert {t: round(w, 3) for t, w in got[key].items()} == value
        else:
            assert got[key] == value, key


def _first_cells(page: str, header: str) -> set[str]:
    """The backquoted names in the first cells of the table that follows ``header`` on a docs page."""
    text = (ROOT / "docs" / page).read_text()
    lines = text[text.index(header) :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return {name for row in rows for name in re.findall(r"`?([a-z_]+)`?", row.split("|")[1])}


@pytest.mark.parametrize(
    "page,header",
    [
        ("budget.md", "| method | schedule"),
        ("benchmark.md", "| MultiMNIST (LeNet"),
        ("benchmark.md", "| GLUE, MiniLM"),
        ("benchmark.md", "| method | small (`equal`)"),
    ],
)
def test_every_cost_table_has_a_row_for_every_method(page, header):
    missing = set(config_options("method")) - _first_cells(page, header)
    assert not missing, f"docs/{page} ({header}) has no row for {sorted(missing)}"


def test_the_budget_key_table_is_the_run_records_declaration():
    from src.results import KEYS, OPEN_KEYS

    text = (ROOT / "docs" / "budget.md").read_text()
    table = text[text.index("| key | meaning |") :].split("\n\n", 1)[0]
    documented = dict(re.findall(r"^\| `([^`]+)` \| (.*) \|$", table, re.M))
    assert documented == {**KEYS, **OPEN_KEYS}


def _named(text: str, start: str, end: str) -> set[str]:
    """The method names listed in ``text`` between ``start`` and ``end``, as config names (``Auto-Lambda`` →
    ``autolambda``, ``αVIL`` → ``alphavil``)."""
    import re

    listed = text.split(start, 1)[1].split(end, 1)[0]
    return {re.sub(r"[^a-z0-9]", "", n.strip().lower().replace("α", "alpha")) for n in re.split(r",|\band\b", listed)}


def _classes(attribute) -> set[str]:
    from tests.conftest import METHODS, method_class

    return {m.replace("_", "") for m in METHODS if attribute(method_class(m))}


def test_the_docs_lists_of_method_families_match_the_classes():
    """Lists in prose that drift when a method is added: each is held to the class attribute it describes."""
    methods_md = (ROOT / "docs" / "methods.md").read_text().replace("\n", " ")
    configuration = (ROOT / "docs" / "configuration.md").read_text().replace("\n", " ")
    assert _named(methods_md, "`scale_heads` is set:", ";") == _classes(lambda c: getattr(c, "scale_heads", False))
    assert _named(methods_md, "needs whole epochs (", ")") == _classes(lambda c: c.whole_epochs)
    refuse = _named(configuration, "compare the tasks' gradients in each step (", ")")
    # a method with its own schedule (blocks, branches, the target alone) takes no task.batching at all
    assert refuse == _classes(lambda c: c.schedule is None and "sampled" not in c.batchings)
