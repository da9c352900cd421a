"""The Kubernetes backend: each ready step (or packed group of cells) as a ``batch/v1`` Job.

The controller holds no state of its own: a step is done when the store has its
``_SUCCESS``; a step is submitted when a Job of its deterministic name exists (found by
the experiment label). Each round it observes both, decides with the pure
:func:`controller.run.kube.reconcile.reconcile`, acts, and waits for a Job to change. Killed
and restarted at any moment, it observes the same and goes on: no Job is created twice, no
finished step is redone. A Job whose pod cannot be scheduled is reported as waiting, with
the scheduler's message (``kubernetes.unschedulable_timeout_s`` fails it after a while). A
step that reports a bad input (``_FAILED`` in the store, exit code 2) has its Job deleted at
once rather than retried until the backoff limit; other pod failures are retried by the Job
controller.
"""

from __future__ import annotations

import time

from controller.plan.graph import Plan
from controller.run.backends.base import Event, OnEvent, RunResult, cancel_marker, start_event, tail, write_step_files
from controller.run.kube.api import KubeApi
from controller.run.kube.config import KubernetesSpec
from controller.run.kube.reconcile import Decision, Failure, Observed, in_flight, reconcile, stale_jobs
from controller.run.kube.render import EXPERIMENT, JobUnit, pack_units, render_job, unit_sizes
from jobs.contract.steps import FAILED, LOG, is_done, read_failure, scan_markers
from jobs.storage import Store


def experiment_selector(experiment: str) -> str:
    return f"{EXPERIMENT}={experiment}"


class KubernetesBackend:
    def __init__(self, store: Store, experiment: str, k: KubernetesSpec, api: KubeApi, poll_s: float = 5.0):
        self.store = store
        self.experiment = experiment
        self.k = k
        self.api = api
        self.poll_s = poll_s
        self.stale_failures: set[str] = set()
        self.owner: dict[str, str] = {}
        self.waiting: dict[str, tuple[float, str]] = {}
        """Jobs whose pod the scheduler cannot place: since when, and the message last shown."""

    @property
    def selector(self) -> str:
        return experiment_selector(self.experiment)

    def _observe_start(self, plan: Plan) -> tuple[set[str], set[str]]:
        """Ids of the committed steps and of those an earlier run left ``_FAILED``, from one
        listing of the store."""
        done, failed = scan_markers(self.store)
        ids = {s.prefix: sid for sid, s in plan.steps.items()}
        return {ids[p] for p in done if p in ids}, {ids[p] for p in failed if p in ids}

    def _observe_jobs(self, units: dict[str, JobUnit], jobs: dict, done: set[str]) -> tuple[set[str], set[str]]:
        """Of the steps whose Job exists (the only ones that can change): which are now
        committed, which failed on a bad input."""
        watched = [s for name, u in units.items() if name in jobs for s in u.steps if s.id not in done]
        committed = {s.id for s in watched if is_done(self.store, s.prefix)}
        failed = {s.id for s in watched if s.id not in committed and self.store.exists(f"{s.prefix}/{FAILED}")}
        return committed, failed

    def _log_tail(self, unit: JobUnit, step_prefix: str) -> str:
        if self.store.exists(f"{step_prefix}/{LOG}"):
            return tail(self.store.read_bytes(f"{step_prefix}/{LOG}").decode(errors="replace"))
        return tail(self.api.pod_log_tail(self.k.namespace, unit.name))

    def _detail(self, f: Failure) -> str:
        reason = f.reason
        if f.delete:
            info = read_failure(self.store, f.log_of.prefix)
            reason = info["error"] if info else f"step {f.log_of.id} reported a bad input"
        return f"{reason}\n{self._log_tail(f.unit, f.log_of.prefix)}".strip()

    def run(self, plan: Plan, on_event: OnEvent = lambda e: None) -> RunResult:
        result = RunResult()
        self.store.delete(cancel_marker(self.experiment))
        done, self.stale_failures = self._observe_start(plan)
        result.already_done = len(done)
        # Grouping over every step, done or not, so a restarted controller forms the same
        # groups and finds the Jobs the last one created instead of submitting steps again.
        units = {u.name: u for u in pack_units(list(plan.steps.values()), unit_sizes(self.k))
                 if any(s.id not in done for s in u.steps)}
        for name in stale_jobs(units, self.api.jobs(self.k.namespace, self.selector)):
            self.api.delete_job(self.k.namespace, name)
        reported = set(done)
        started: dict[str, float] = {}
        self.owner = {s.id: name for name, u in units.items() for s in u.steps}
        while units:
            if self.store.exists(cancel_marker(self.experiment)):
                for unit in list(units.values()):
                    self._finish(units, unit, "failed", "cancelled (ctune cancel)", result, reported, started, on_event)
                break
            jobs = self.api.jobs(self.k.namespace, self.selector)
            committed, failed_input = self._observe_jobs(units, jobs, done)
            done |= committed
            seen = Observed(units, jobs, frozenset(done), frozenset(failed_input),
                            frozenset(result.failed) | frozenset(result.blocked), frozenset(reported),
                            self.k.max_in_flight)
            self._act(reconcile(seen), units, result, reported, started, on_event)
            if units and in_flight(units, jobs):
                self._watch_unscheduled(units, result, reported, started, on_event)
            if units:
                self.api.wait_for_change(self.k.namespace, self.selector, self.poll_s)
        return result

    def _act(self, d: Decision, units: dict[str, JobUnit], result: RunResult, reported: set[str],
             started: dict[str, float], on_event: OnEvent) -> None:
        for step in d.committed:
            reported.add(step.id)
            result.ran.append(step.id)
            on_event(Event("done", step, time.time() - started.get(self.owner.get(step.id, ""), time.time())))
        for name in d.finished:
            del units[name]
        for unit in d.block:
            self._finish(units, unit, "blocked", "", result, reported, started, on_event)
        for f in d.fail:
            if f.delete:
                self.api.delete_job(self.k.namespace, f.unit.name)  # retrying a bad input will not help
            self._finish(units, f.unit, "failed", self._detail(f), result, reported, started, on_event)
        todo = [s for unit in d.submit for s in unit.steps if s.id not in reported]
        for s in todo:  # a bad input reported by an earlier run may have been fixed
            if s.id in self.stale_failures:
                self.store.delete(f"{s.prefix}/{FAILED}")
        write_step_files(self.store, todo)  # written when needed: a grid has thousands
        for unit in d.submit:
            self.api.create_job(render_job(unit, self.experiment, self.store.root, self.k))
            started.setdefault(unit.name, time.time())
            on_event(start_event(unit, sum(s.id not in reported for s in unit.steps)))

    def _watch_unscheduled(self, units: dict[str, JobUnit], result: RunResult, reported: set[str],
                           started: dict[str, float], on_event: OnEvent) -> None:
        """Say which Jobs' pods the scheduler cannot place, with its message (again when it
        changes); past ``unschedulable_timeout_s`` (when set), fail them."""
        now = time.time()
        waiting = {n: m for n, m in self.api.unscheduled(self.k.namespace, self.selector).items() if n in units}
        for name in list(self.waiting):
            if name not in waiting:
                del self.waiting[name]  # placed (or gone)
        for name, message in waiting.items():
            since, shown = self.waiting.get(name, (now, ""))
            self.waiting[name] = (since, message)
            unit = units[name]
            if message != shown:
                on_event(Event("waiting", unit.steps[0], now - started.get(name, since), message, unit.steps))
            limit = self.k.unschedulable_timeout_s
            if limit and now - since >= limit:
                self.api.delete_job(self.k.namespace, name)
                del self.waiting[name]
                self._finish(units, unit, "failed", f"Job {name} could not be scheduled for {now - since:.0f} s "
                             f"(unschedulable_timeout_s: {limit}): {message}", result, reported, started, on_event)

    @staticmethod
    def _finish(units: dict[str, JobUnit], unit: JobUnit, kind: str, detail: str, result: RunResult,
                reported: set[str], started: dict[str, float], on_event: OnEvent) -> None:
        for s in unit.steps:
            if s.id in reported:
                continue
            if kind == "failed":
                result.failed[s.id] = detail
            else:
                result.blocked.append(s.id)
            on_event(Event(kind, s, time.time() - started.get(unit.name, time.time()), detail))
        del units[unit.name]
