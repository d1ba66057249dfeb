# Two commands for users: `make reproduce` (every figure) and `make test` (the test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup test test-fast reproduce reproduce-paper quick quick-reference report lint benchmark clean-results

setup: $(STAMP)

# torch first, from the pins in requirements.txt: `higher` declares an unpinned torch and
# would otherwise pull a build of its own.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $$(grep -E '^torch(vision)?==' requirements.txt)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Two workers side by side, the workflow's tests on one of them (tests/conftest.py): on 2 vCPUs the
# suite takes about two thirds as long as one process would. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: setup
	$(PYTEST) --durations=25

# Everything but the tests marked slow (end-to-end runs of the workflow and of whole commands,
# recomputation at the paper's settings, bisections, executed notebooks and examples): the loop
# while editing. `make test` stays everything, and is what CI runs.
test-fast: setup
	$(PYTEST) -m "not slow"

# Every figure; the image grids of Fig. 4b/4c cut to what a 2-vCPU CPU runs in an hour or so each
# (config/reduced.yaml, what figures/ holds). One torch thread a step and as many steps side by side as
# there are cores: on 2 vCPUs two one-thread steps do more than one two-thread step, and every step
# computes as it did for figures/. reproduce-paper: the paper's image grids too (a GPU or a cluster:
# docs/gpu-and-cluster.md).
reproduce: setup
	$(BIN)/snakemake --cores all --max-threads 1 --configfile config/reduced.yaml

reproduce-paper: setup
	$(BIN)/snakemake --cores all --config max_projected_hours=null

quick: setup
	$(BIN)/snakemake --cores all --configfile config/quick.yaml --directory results/quick

# What `make quick` must reproduce (tests/reference/quick, committed): the quick workflow as the tests run it,
# up to its claims and source data. Rerun after a change to what the claims or the source data say.
quick-reference: setup
	rm -rf results/quick-reference
	$(BIN)/snakemake --cores 2 --max-threads 1 --configfile config/quick.yaml --directory results/quick-reference \
		--omit-from reproduction
	rm -rf tests/reference/quick/data && mkdir -p tests/reference/quick
	cp results/quick-reference/figures/claims.json tests/reference/quick/
	cp -r results/quick-reference/figures/data tests/reference/quick/data

# The figures with captions, the claims table and the provenance of their source data, in one file: on a fresh
# clone from what the repository holds, after a run from what it wrote.
report: setup
	$(BIN)/snakemake --configfile config/reduced.yaml --report report.html

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/ruff check src tests benchmarks

benchmark: setup
	$(BIN)/python benchmarks/sinusoid_grid.py
	$(BIN)/python benchmarks/image_meta_iteration.py

clean-results:
	rm -rf results logs .snakemake
