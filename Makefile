# cluster-tune: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SPEC ?= experiments/quickstart.yaml
JOBS ?= 1
# --dist loadfile: the Kubernetes tier (one file) shares one worker and one control plane;
# --durations: the slowest tests, named in every CI log
PYTEST_ARGS ?= -n 2 --dist loadfile --durations 15
OVERLAY ?= dev
VERSION ?= latest
JOB_BASE_IMAGE ?= nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
CONTROLLER_BASE_IMAGE ?= python:3.12-slim-bookworm
# etcd, containerd and kubectl for the Kubernetes tier, unpacked from Debian's packages (no
# service is installed; the node's containerd runs from here with runc, installed with podman)
KUBE_TOOLS := $(abspath $(VENV))/kube-tools
KUBE_STAMP := $(KUBE_TOOLS)/.installed-node
TEST_PATH := $(PATH):$(KUBE_TOOLS)/usr/bin
KUBE_BIN_CACHE ?= $(HOME)/.cache/ctune-kube-v1.20.2-r2
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cu128
IMAGES_STAMP := $(VENV)/.images-$(VERSION)
IMAGE_INPUTS := images/job.Dockerfile images/controller.Dockerfile images/build-local.sh pyproject.toml constraints.txt \
  lock/jobs.txt lock/controller.txt lock/build.in \
  $(shell git ls-files jobs controller 2>/dev/null)
export CONTAINERS_CONF ?= $(abspath images/containers.conf)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# Every package from the lock (lock/dev.txt: exact versions, hash-checked), then torch at
# lock/torch.in's version (the CPU build lies on this disk; an unpinned torch would pull a
# multi-GB CUDA build), then the project itself, built with the locked setuptools.
$(STAMP): pyproject.toml constraints.txt lock/dev.txt
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11) and "error: the lock is for Python 3.11 and newer; this python3 is " + sys.version.split()[0])'
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r lock/dev.txt
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) lock/compile.py --extras > $(VENV)/.not-locked
	xargs -r $(PY) -m pip uninstall --quiet -y < $(VENV)/.not-locked
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP) ## create .venv and install everything from the lock (CPU torch)

# a virtual environment with onnxruntime and tokenizers only (at the lock's versions): the test
# that a version's ONNX folder loads with nothing of ours, no torch and no transformers
ONNX_ONLY := $(VENV)/onnx-only/.installed
$(ONNX_ONLY): constraints.txt
	rm -rf $(VENV)/onnx-only && python3 -m venv $(VENV)/onnx-only
	$(VENV)/onnx-only/bin/python -m pip install --quiet -c constraints.txt onnxruntime tokenizers
	touch $@

# (not after $(STAMP): a changed pyproject.toml would first be installed from the stale lock)
UV_READY = test -x $(VENV)/bin/uv || { python3 -m venv $(VENV) && $(PY) -m pip install --quiet -c constraints.txt uv; }

lock: ## re-resolve the lock after a change of pyproject.toml, keeping every pin that still fits
	$(UV_READY)
	$(PY) lock/compile.py

lock-upgrade: ## move every pin of the lock to the newest release (then re-measure the docs' figures)
	$(UV_READY)
	$(PY) lock/compile.py --upgrade

run: $(STAMP) ## run the quickstart spec on the embedded local backend (SPEC=..., JOBS=...)
	$(VENV)/bin/ctune run $(SPEC) --jobs $(JOBS)

plan: $(STAMP) ## show what `make run` would run and what is done
	$(VENV)/bin/ctune plan $(SPEC)

figures: $(STAMP) ## after make run: record the quickstart's cells and the lock's digest in docs/figures/quickstart.json
	$(PY) -m tests.figures record store

report: $(STAMP) ## rebuild the report of SPEC from the done cells
	$(VENV)/bin/ctune report $(SPEC)

# (a kubectl already on PATH comes first: Debian's 1.20 one builds k8s/ with an older kustomize)
KUBE_DEBS = etcd-server containerd $(if $(shell command -v kubectl),,kubernetes-client)

$(KUBE_STAMP):
	mkdir -p $(KUBE_TOOLS)/debs
	cd $(KUBE_TOOLS)/debs && { apt-get download $(KUBE_DEBS) 2>/dev/null \
	  || { apt-get update -q && apt-get download $(KUBE_DEBS); }; }
	for deb in $(KUBE_TOOLS)/debs/*.deb; do dpkg -x $$deb $(KUBE_TOOLS); done
	rm -rf $(KUBE_TOOLS)/debs
	PATH=$(TEST_PATH) etcd --version >/dev/null && PATH=$(TEST_PATH) kubectl version --client >/dev/null
	PATH=$(TEST_PATH) containerd --version >/dev/null
	touch $(KUBE_STAMP)

kube-tools: $(KUBE_STAMP) ## etcd, containerd and kubectl for the Kubernetes tier, into .venv/kube-tools

kube-binaries: ## rebuild the Kubernetes v1.20.2 binaries (r2: reflect2 fixed) from Debian source (~20 min)
	tests/build_kube.sh $${CTUNE_KUBE_BIN:-$(KUBE_BIN_CACHE)}

lint: $(STAMP) ## ruff, mypy, import contracts, complexity (no function above 15)
	$(VENV)/bin/ruff check controller jobs tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m tests.complexity controller jobs --max 15

# the report page's browser test: Debian's chromium, driven by playwright (no browser download)
CHROMIUM_DEPS = command -v chromium >/dev/null \
	  || apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

browser: ## Debian's chromium, for the report page's browser test
	$(CHROMIUM_DEPS)

# KServe's and Triton's schemas (their wheels unpacked, not installed): k8s/serving's tests
SERVING_SCHEMAS := $(VENV)/serving-schemas/.installed
$(SERVING_SCHEMAS): lock/serving-schemas.txt $(STAMP)
	rm -rf $(VENV)/serving-schemas && mkdir -p $(VENV)/serving-schemas/wheels
	$(PY) -m pip download --quiet --no-deps --require-hashes -r lock/serving-schemas.txt -d $(VENV)/serving-schemas/wheels
	cd $(VENV)/serving-schemas && for w in wheels/*.whl; do $(abspath $(PY)) -m zipfile -e $$w .; done
	touch $@

test: $(STAMP) $(ONNX_ONLY) $(SERVING_SCHEMAS) $(KUBE_STAMP) $(VENV)/.images-test lint browser ## lint, images (VERSION=test), chromium, then every test tier
	PATH=$(TEST_PATH) $(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: $(STAMP) $(ONNX_ONLY) $(SERVING_SCHEMAS) ## the unit tier alone (no job processes, no control plane)
	$(PY) -m pytest -q -m unit $(PYTEST_ARGS)

test-faults: $(STAMP) ## 20 seeded kill trials of a run (controller or step; SIGKILL, SIGTERM, Ctrl-C), each resumed
	CTUNE_FAULT_TRIALS=$${CTUNE_FAULT_TRIALS:-20} $(PY) -m pytest -q -s -m faults $(PYTEST_ARGS) tests/test_faults.py

bench: $(STAMP) $(KUBE_STAMP) ## benchmarks, each against a peer measured in the same run (about 15 min)
	$(PY) -m bench
	PATH=$(TEST_PATH) $(PY) -m bench.controller

REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# the labels also on the command line: podman reuses a cached LABEL layer whatever its ARG values
IMAGE_ARGS = --format docker --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
  --label org.opencontainers.image.version=$(VERSION) --label org.opencontainers.image.revision=$(REVISION)

images: ## build the job (CUDA) and controller images with podman (JOB_BASE_IMAGE=, TORCH_INDEX_URL=, BUILD_OPTS=, VERSION=)
	podman build $(IMAGE_ARGS) $(BUILD_OPTS) -f images/job.Dockerfile --build-arg BASE_IMAGE=$(JOB_BASE_IMAGE) \
	  --build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL) -t cluster-tune-job:$(VERSION) .
	podman build $(IMAGE_ARGS) $(BUILD_OPTS) -f images/controller.Dockerfile \
	  --build-arg BASE_IMAGE=$(CONTROLLER_BASE_IMAGE) -t cluster-tune-controller:$(VERSION) .

PODMAN_DEPS = command -v podman >/dev/null && command -v debootstrap >/dev/null && command -v runc >/dev/null \
	  || apt-get install -y -q podman debootstrap runc || (apt-get update -q && apt-get install -y -q podman debootstrap runc)

$(VENV)/.images-%: $(IMAGE_INPUTS) | $(STAMP)
	$(PODMAN_DEPS)
	images/build-local.sh $*
	touch $@

images-local: $(IMAGES_STAMP) ## build both images here: a debootstrap'ed Debian base, CPU torch, no registry

deploy: ## apply k8s/overlays/$(OVERLAY) to the current kubectl context
	kubectl apply -k k8s/overlays/$(OVERLAY)

submit: $(STAMP) ## run SPEC on the cluster: one Job per step (store: must be s3://)
	$(VENV)/bin/ctune run $(SPEC) --backend kubernetes

status: $(STAMP) ## what of SPEC is done, what failed, and its Jobs on the cluster
	$(VENV)/bin/ctune status $(SPEC) --kubernetes

clean: ## remove the local store of runs and what the tests cache (keeps .venv)
	rm -rf store .pytest_cache .mypy_cache .ruff_cache .import_linter_cache $(KUBE_BIN_CACHE)
	rm -rf $${TMPDIR:-/tmp}/ctune-cache* $${TMPDIR:-/tmp}/ctune-kube-* $${TMPDIR:-/tmp}/pytest-of-$$(id -un)
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

.PHONY: help install lock lock-upgrade run plan figures report browser kube-tools kube-binaries lint test test-unit test-faults bench clean images images-local deploy submit status
