# cluster-tune: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SPEC ?= experiments/quickstart.yaml
JOBS ?= 1
# two workers: most tests wait on job processes or the API server; the Kubernetes tests share one
PYTEST_ARGS ?= -n 2 --dist loadgroup
OVERLAY ?= dev
VERSION ?= latest
JOB_BASE_IMAGE ?= nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
CONTROLLER_BASE_IMAGE ?= python:3.12-slim-bookworm
KUBE_DEPS := $(VENV)/.kube-deps

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

# etcd and kubectl for the Kubernetes integration tier (the API server binaries come from
# ../shared/k8s, or `make kube-binaries` rebuilds them from Debian's source package)
$(KUBE_DEPS): | $(STAMP)
	command -v etcd >/dev/null || apt-get install -y -q etcd-server || (apt-get update -q && apt-get install -y -q etcd-server)
	command -v kubectl >/dev/null || apt-get install -y -q kubernetes-client || (apt-get update -q && apt-get install -y -q kubernetes-client)
	touch $(KUBE_DEPS)

kube-binaries: ## rebuild kube-apiserver/kube-controller-manager v1.20.2 from Debian source (~8 min)
	tests/build_kube.sh $${CTUNE_KUBE_BIN:-$$HOME/.cache/ctune-kube-v1.20.2}

test: $(STAMP) $(KUBE_DEPS) ## run the test suite (unit, pipeline, S3, Kubernetes integration)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) ## run the benchmarks (ratios against a baseline measured in the same run)
	$(PY) -m bench

images: ## build the job (CUDA) and controller images with podman (JOB_BASE_IMAGE=, CONTROLLER_BASE_IMAGE=, VERSION=)
	podman build -f images/job.Dockerfile --build-arg BASE_IMAGE=$(JOB_BASE_IMAGE) -t cluster-tune-job:$(VERSION) .
	podman build -f images/controller.Dockerfile --build-arg BASE_IMAGE=$(CONTROLLER_BASE_IMAGE) -t cluster-tune-controller:$(VERSION) .

deploy: ## apply k8s/overlays/$(OVERLAY) to the current kubectl context
	kubectl apply -k k8s/overlays/$(OVERLAY)

submit: $(STAMP) ## run SPEC on the cluster: one Job per step (store: must be s3://)
	$(VENV)/bin/ctune run $(SPEC) --backend kubernetes

status: $(STAMP) ## what of SPEC is done, what failed, and its Jobs on the cluster
	$(VENV)/bin/ctune status $(SPEC) --kubernetes

clean: ## remove the local store of runs (keeps .venv)
	rm -rf store

.PHONY: help install run plan report test bench clean images deploy submit status kube-binaries
