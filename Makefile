# Run `make help` for the list of targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# torch is installed on its own first, so that pip never resolves a bare `torch` by itself: on a
# CPU-only machine that would pull several GB of CUDA wheels. The default takes PyPI's build (CUDA on
# Linux, which a GPU user wants); CPU-only users with internet add
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
ARGS ?=
DIR ?=

.PHONY: help install postgres test test-unit test-slow test-all lint format run sweep search bench report transfer frontier

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

install: ## Install torch (TORCH_SPEC), then this project with its dev, sweep and postgres extras
	$(PIP) install "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PIP) install -e ".[dev,sweep,postgres]"

postgres: ## A PostgreSQL server for several search workers' shared study (Debian's package; needs root), for its test
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/pg_ctl

test: ## Fast tests (no `slow` marker), on every core: minutes on two
	$(PYTHON) -m pytest -q -n auto

test-unit: ## Only the tests that train nothing (no `trains` marker): the inner loop, under a minute
	$(PYTHON) -m pytest -q -n auto -m "not slow and not trains"

test-slow: ## Only the `slow` tests: subprocess sweeps, the CLI, real-data runs (CI runs them after `make test`)
	$(PYTHON) -m pytest -q -n auto -m slow

test-all: ## Every test, the slow ones included
	$(PYTHON) -m pytest -q -n auto -m ""

lint: ## ruff lint and format check
	$(PYTHON) -m ruff check src tests experiments
	$(PYTHON) -m ruff format --check src tests experiments

format: ## ruff format and autofix
	$(PYTHON) -m ruff format src tests experiments
	$(PYTHON) -m ruff check --fix src tests experiments

run: ## One run: make run ARGS="task=multimnist_left method=alphavil"
	$(PYTHON) -m src.run $(ARGS)

sweep: ## A multirun: make sweep ARGS="method=single_task,uniform,alphavil,diw seed=0,1,2"
	$(PYTHON) -m src.run -m $(ARGS)

search: ## A weight search: make search ARGS="task=multimnist_low_coarse search=halving"
	$(PYTHON) -m src.search $(ARGS)

bench: ## Cost benchmark: seconds per 1,000 examples and peak memory per method
	$(PYTHON) -m experiments.bench $(ARGS)

report: ## Tables and plots from a multirun folder: make report DIR=logs/multiruns/<date>
	$(PYTHON) -m experiments.report $(DIR) $(ARGS)

frontier: ## Target score against total compute, every way to pick weights: make frontier DIR="<folders>"
	$(PYTHON) -m experiments.frontier $(DIR) $(ARGS)

transfer: ## Measured effect of each auxiliary against each method's weights: make transfer DIR="<folders>"
	$(PYTHON) -m experiments.transfer $(DIR) $(ARGS)
