"""The Kubernetes backend without a cluster: the pure reconcile (observe -> decide), and the
backend's loop against a fake API that completes Jobs by committing their steps."""

from __future__ import annotations

import pytest

from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec
from controller.run.kube.api import JobState
from controller.run.kube.backend import KubernetesBackend
from controller.run.kube.config import KubernetesSpec
from controller.run.kube.reconcile import Observed, reconcile, stale_jobs
from controller.run.kube.render import pack_units
from jobs.storage import open_store

pytestmark = pytest.mark.unit


def tiny_plan(**overrides):
    raw = {"name": "grid", "datasets": ["ag_news"], "settings": ["bert", "clust"], "budgets": [64],
           "repetitions": 2, **overrides}
    return build_plan(parse_spec(raw), {"ag_news": "datasets/ag_news-0123456789abcdef"})


def job(name: str, complete=False, failed=False, message="") -> JobState:
    return JobState(name, {}, {}, 0 if complete or failed else 1, int(complete), int(failed), complete, failed,
                    message)


def observe(plan, pack=1, jobs=(), done=(), failed_input=(), gave_up=(), reported=(), max_in_flight=20):
    """What the backend would observe; the units dict is shared with the observation."""
    units = {u.name: u for u in pack_units(list(plan.steps.values()), pack)}
    return Observed(units, {j.name: j for j in jobs}, frozenset(done), frozenset(failed_input), frozenset(gave_up),
                    frozenset(reported), max_in_flight), units


def by_kind(plan, kind):
    return [s for s in plan.steps.values() if s.kind == kind]


def test_only_steps_whose_inputs_are_done_are_submitted():
    # GIVEN nothing done and no Jobs
    plan = tiny_plan()
    seen, _ = observe(plan)
    # WHEN it decides
    d = reconcile(seen)
    # THEN the clustering and the bert cells (no inputs but the dataset) are submitted, nothing else
    assert {u.kind for u in d.submit} == {"cluster", "finetune"}
    assert all("encoder" not in u.steps[0].inputs for u in d.submit if u.kind == "finetune")
    assert not d.fail and not d.block and not d.committed


def test_max_in_flight_counts_running_jobs():
    plan = tiny_plan()
    cluster = by_kind(plan, "cluster")[0]
    running = [job(f"ct-cluster-{cluster.id}")]
    # the running clustering takes one of two places: one bert cell is submitted, the clustering not again
    d = reconcile(observe(plan, jobs=running, max_in_flight=2)[0])
    assert [u.kind for u in d.submit] == ["finetune"] and "encoder" not in d.submit[0].steps[0].inputs
    # with three places, two; with one, none
    assert [u.kind for u in reconcile(observe(plan, jobs=running, max_in_flight=3)[0]).submit] == ["finetune"] * 2
    assert reconcile(observe(plan, jobs=running, max_in_flight=1)[0]).submit == []


def test_a_committed_step_is_reported_once_and_its_dependents_follow():
    plan = tiny_plan()
    cluster = by_kind(plan, "cluster")[0]
    name = f"ct-cluster-{cluster.id}"
    seen, _ = observe(plan, jobs=[job(name, complete=True)], done=[cluster.id])
    d = reconcile(seen)
    assert d.committed == [cluster] and d.finished == [name]
    assert [u.kind for u in d.submit].count("intertrain") == 1
    again, _ = observe(plan, jobs=[job(name, complete=True)], done=[cluster.id], reported=[cluster.id])
    assert reconcile(again).committed == []


def test_bad_input_fails_at_once_and_deletes_the_job():
    plan = tiny_plan()
    cluster = by_kind(plan, "cluster")[0]
    seen, _ = observe(plan, jobs=[job(f"ct-cluster-{cluster.id}")], failed_input=[cluster.id])
    (f,) = reconcile(seen).fail
    assert f.delete and f.log_of == cluster


def test_jobs_that_gave_up_or_completed_without_commit_fail():
    plan = tiny_plan()
    cluster = by_kind(plan, "cluster")[0]
    name = f"ct-cluster-{cluster.id}"
    (f,) = reconcile(observe(plan, jobs=[job(name, failed=True, message="BackoffLimitExceeded")])[0]).fail
    assert not f.delete and "BackoffLimitExceeded" in f.reason
    (f,) = reconcile(observe(plan, jobs=[job(name, complete=True)])[0]).fail
    assert "completed but step" in f.reason


def test_dependents_of_a_failed_step_are_blocked():
    plan = tiny_plan()
    cluster = by_kind(plan, "cluster")[0]
    seen, units = observe(plan, gave_up=[cluster.id])
    del units[f"ct-cluster-{cluster.id}"]  # the backend forgets a unit once it failed
    d = reconcile(seen)
    assert {u.kind for u in d.block} == {"intertrain"}
    assert {u.kind for u in d.submit} == {"finetune"}  # the bert cells read no clustering
    assert all("encoder" not in u.steps[0].inputs for u in d.submit)


def test_ended_jobs_of_pending_units_are_submitted_again():
    # a Job that gave up is retried once; one that completed ran a step since taken back
    plan = tiny_plan()
    _, units = observe(plan)
    failed, completed, running = list(units)[:3]
    jobs = {failed: job(failed, failed=True), "ct-other-x": job("ct-other-x", failed=True),
            completed: job("x", complete=True), running: job("y"), "ct-other-y": job("ct-other-y", complete=True)}
    assert stale_jobs(units, jobs) == [failed, completed]


class FakeApi:
    """Completes every Job at once by committing its steps in the store."""

    def __init__(self, store):
        self.store, self.created = store, []

    def jobs(self, namespace, selector):
        return {n: job(n, complete=True) for n in self.created}

    def create_job(self, manifest):
        self.created.append(manifest["metadata"]["name"])
        for sid in manifest["metadata"]["annotations"]["cluster-tune.io/steps"].split(","):
            kind = manifest["metadata"]["labels"]["cluster-tune.io/kind"]
            self.store.write_bytes(f"steps/{kind}/{sid}/_SUCCESS", b"{}")
        return True

    def wait_for_change(self, namespace, selector, timeout_s):
        pass

    def delete_job(self, namespace, name):
        raise AssertionError("nothing should be deleted")


def test_restarted_controller_forms_the_same_packed_jobs(tmp_path):
    plan = tiny_plan()
    store = open_store(tmp_path / "store")
    k = KubernetesSpec(pack=2)
    expected = {u.name for u in pack_units(list(plan.steps.values()), 2)}
    first_cell = next(s for s in plan.steps.values() if s.kind == "finetune")
    store.write_bytes(f"{first_cell.prefix}/_SUCCESS", b"{}")  # done by a Job of the last controller
    api = FakeApi(store)
    result = KubernetesBackend(store, "grid", k, api, poll_s=0).run(plan)
    assert result.ok and result.already_done == 1
    assert set(api.created) <= expected and len(api.created) == len(expected)  # its group is resubmitted whole
    assert sorted(result.ran) == sorted(sid for sid in plan.steps if sid != first_cell.id)


class UnschedulableApi:
    """Jobs are created but their pods never placed: the scheduler's message for each."""

    MESSAGE = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."

    def __init__(self):
        self.created, self.deleted, self.rounds = [], [], 0

    def jobs(self, namespace, selector):
        return {n: job(n) for n in self.created if n not in self.deleted}

    def create_job(self, manifest):
        self.created.append(manifest["metadata"]["name"])
        return True

    def unscheduled(self, namespace, selector):
        self.rounds += 1
        return {n: self.MESSAGE for n in self.created if n not in self.deleted}

    def wait_for_change(self, namespace, selector, timeout_s):
        import time

        time.sleep(timeout_s)

    def delete_job(self, namespace, name):
        self.deleted.append(name)

    def pod_log_tail(self, namespace, name, lines=15):
        return ""


def test_an_unschedulable_job_is_shown_waiting_once_then_failed_after_its_timeout(tmp_path):
    plan = tiny_plan(settings=["bert"], repetitions=1)
    store = open_store(tmp_path / "store")
    api = UnschedulableApi()
    events = []
    k = KubernetesSpec(pack=1, unschedulable_timeout_s=1)
    result = KubernetesBackend(store, "grid", k, api, poll_s=0.2).run(plan, events.append)
    waiting = [e for e in events if e.kind == "waiting"]
    # shown once (the message did not change), with the scheduler's own words, though seen many rounds
    assert [e.detail for e in waiting] == [UnschedulableApi.MESSAGE] and api.rounds >= 3
    assert api.deleted == api.created and len(result.failed) == 1
    (detail,) = result.failed.values()
    assert "could not be scheduled for" in detail and "unschedulable_timeout_s: 1" in detail
    assert UnschedulableApi.MESSAGE in detail


def test_without_a_timeout_an_unschedulable_job_keeps_waiting(tmp_path):
    import threading

    from controller.run.backends.base import cancel_marker

    plan = tiny_plan(settings=["bert"], repetitions=1)
    store = open_store(tmp_path / "store")
    api = UnschedulableApi()
    events = []
    backend = KubernetesBackend(store, "grid", KubernetesSpec(pack=1), api, poll_s=0.2)
    runner = threading.Thread(target=lambda: events.append(backend.run(plan, events.append)), daemon=True)
    runner.start()
    runner.join(timeout=2)
    try:
        assert runner.is_alive() and not api.deleted and [e.kind for e in events].count("waiting") == 1
    finally:
        store.write_bytes(cancel_marker("grid"), b"cancelled\n")  # what ctune cancel does
        runner.join(timeout=10)
    assert not runner.is_alive()


def test_the_schedulers_message_is_read_from_a_false_pod_scheduled_condition():
    from types import SimpleNamespace as NS

    from controller.run.kube.api import scheduler_message

    def pod(*conditions):
        return NS(status=NS(conditions=[NS(type=t, status=s, message=m, reason=r) for t, s, m, r in conditions]))

    assert scheduler_message(pod(("PodScheduled", "False", "0/1 nodes are available:\n 1 Insufficient nvidia.com/gpu.",
                                  "Unschedulable"))) == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert scheduler_message(pod(("PodScheduled", "False", None, "Unschedulable"))) == "Unschedulable"
    assert scheduler_message(pod(("PodScheduled", "True", None, None), ("Ready", "False", "x", "y"))) is None
    assert scheduler_message(NS(status=NS(conditions=None))) is None
