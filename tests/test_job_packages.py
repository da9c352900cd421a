"""What a machine must have installed to run a plan's remaining steps here (local backend).

A lent GPU machine gets the sIB clusterings computed elsewhere and has no sIB: only steps still
to run may ask for a package, and a missing one is a one-line ``BadInput`` naming it.
"""

from __future__ import annotations

import importlib.util

import pytest

from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec
from controller.run.backends.local import check_job_packages, step_packages
from jobs.contract.errors import BadInput

pytestmark = pytest.mark.unit

PREFIXES = {"ag_news": "datasets/ag_news-aaaa"}


def _plan(settings, **clustering):
    raw = {"name": "t", "datasets": ["ag_news"], "model": "minilm", "settings": settings, "budgets": [64],
           "repetitions": 1, "protocols": ["strong"], **({"clustering": clustering} if clustering else {})}
    return build_plan(parse_spec(raw), PREFIXES)


@pytest.fixture
def without(monkeypatch):
    """Pretend these top-level packages are not installed."""
    real = importlib.util.find_spec

    def absent(*names):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a))
    return absent


def _kinds(plan, *kinds):
    return [s for s in plan.steps.values() if s.kind in kinds]


def test_an_sib_clustering_to_run_needs_sib(without):
    plan = _plan(["bert", "clust"])
    without("sib")
    with pytest.raises(BadInput, match=r"needs sib: pip install 'cluster-tune\[jobs\]'"):
        check_job_packages(plan.steps.values())


def test_clusterings_done_elsewhere_need_no_sib(without):
    plan = _plan(["bert", "clust", "clust+concat+self"])
    without("sib")
    rest = [s for s in plan.steps.values() if s.kind != "cluster"]
    assert {s.kind for s in rest} >= {"intertrain", "finetune", "embed", "classic"}
    assert all(step_packages(s) == () for s in rest)
    assert check_job_packages(rest) is None  # sIB is absent, and nothing asks for it
    with pytest.raises(BadInput, match="needs sib"):  # while the clustering would
        check_job_packages(plan.steps.values())


def test_kmeans_clustering_needs_no_sib():
    cluster = _kinds(_plan(["clust"], method="kmeans"), "cluster")
    assert cluster and all(step_packages(s) == () for s in cluster)


def test_setfit_cells_need_setfit_and_only_they(without):
    plan = _plan(["bert", "setfit"])
    without("setfit", "sib")
    with pytest.raises(BadInput, match="needs setfit"):
        check_job_packages(_kinds(plan, "setfit"))
    check_job_packages(_kinds(plan, "finetune", "classic", "embed"))


def test_torch_is_needed_by_every_step(without):
    without("torch", "transformers")
    with pytest.raises(BadInput, match="needs torch, transformers"):
        check_job_packages([])
