# cluster-tune: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SPEC ?= experiments/quickstart.yaml
JOBS ?= 1
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install everything (CPU torch)

run: $(STAMP) ## run the quickstart spec on the embedded local backend (SPEC=..., JOBS=...)
	$(VENV)/bin/ctune run $(SPEC) --jobs $(JOBS)

plan: $(STAMP) ## show what `make run` would run and what is done
	$(VENV)/bin/ctune plan $(SPEC)

report: $(STAMP) ## rebuild the report of SPEC from the done cells
	$(VENV)/bin/ctune report $(SPEC)

test: $(STAMP) ## run the test suite
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) ## run the benchmarks (ratios against a baseline measured in the same run)
	$(PY) -m bench

clean: ## remove the local store of runs (keeps .venv)
	rm -rf store

.PHONY: help install run plan report test bench clean
