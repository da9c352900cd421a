"""Where a run stands (``controller.run.runstate``): from one listing of a local store, and from
the committed set alone when the grid is finished."""

from __future__ import annotations

import json

import pytest

from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec
from controller.run.runstate import run_state
from jobs.contract.claims import acquire
from jobs.contract.progress import StepProgress
from jobs.contract.steps import FAILED, LOG, MARKER
from jobs.storage import LocalStore

pytestmark = pytest.mark.unit


def _plan():
    spec = parse_spec({"name": "s", "datasets": ["ag_news"], "settings": ["bert", "clust"], "repetitions": 2})
    return build_plan(spec, {"ag_news": "datasets/ag_news-0123456789abcdef"}, None)


def test_done_running_failed_and_to_do_per_kind(tmp_path):
    store, plan = LocalStore(tmp_path), _plan()
    steps = {s.kind: [] for s in plan.steps.values()}
    for s in plan.steps.values():
        steps[s.kind].append(s)
    cluster, intertrain, (f0, f1, f2, f3) = steps["cluster"][0], steps["intertrain"][0], steps["finetune"]
    store.write_bytes(f"{cluster.prefix}/{MARKER}", b"{}")
    acquire(store, intertrain.prefix, "me", ttl=60)  # running, with its progress and its log so far
    StepProgress("clust inter-training", "batches", store, intertrain.prefix)(5, 10, 1.5, final=True)
    store.write_bytes(f"{intertrain.prefix}/{LOG}", b"loading\n")
    store.write_bytes(f"{f0.prefix}/{FAILED}", json.dumps({"error": "finetune: a bad sample\nsecond line"}).encode())
    gone = acquire(store, f1.prefix, "me", ttl=0.0)  # claimed, then its process died: to do again
    assert gone is not None
    state = run_state(store, plan, seen_failed={f2.id: "Traceback ...\nRuntimeError: CUDA out of memory"})
    assert dict(state.counts["cluster"]) == {"done": 1}
    assert dict(state.counts["intertrain"]) == {"running": 1}
    assert dict(state.counts["finetune"]) == {"failed": 2, "to do": 2}
    (running,) = state.running
    assert running.step == intertrain.id and running.log == f"{intertrain.prefix}/{LOG}"
    assert running.progress.line().startswith("clust inter-training: 5/10 batches (50%)")
    errors = {s.step: s.error for s in state.failed}
    assert errors == {f0.id: "second line", f2.id: "RuntimeError: CUDA out of memory"}
    assert not state.finished and state.total["done"] == 1 and f3.prefix not in state.done_prefixes


def test_a_finished_grid_is_not_listed(tmp_path):
    class NoListing(LocalStore):
        def list(self, prefix):
            raise AssertionError("listed")

    plan = _plan()
    state = run_state(NoListing(tmp_path), plan, committed={s.prefix for s in plan.steps.values()})
    assert state.finished and sum(state.total.values()) == len(plan.steps)
