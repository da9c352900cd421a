"""The Kubernetes backend: each ready step (or packed group of cells) as a ``batch/v1`` Job.

The controller holds no state of its own: a step is done when the store has its
``_SUCCESS``; a step is submitted when a Job of its deterministic name exists (found by
the experiment label). Killed and restarted at any moment, it lists both and goes on:
no Job is created twice, no finished step is redone. A step that reports a bad input
(``_FAILED`` in the store, exit code 2) has its Job deleted at once rather than retried
until the backoff limit; other pod failures are retried by the Job controller.
"""

from __future__ import annotations

import time
from typing import Callable

from controller.backends.local import Event, RunResult, tail, write_step_files
from controller.kube.api import KubeApi
from controller.kube.render import EXPERIMENT, JobUnit, pack_units, render_job
from controller.plan import Plan
from controller.spec import KubernetesSpec
from jobs.step import FAILED, LOG, is_done, read_failure
from jobs.storage import Store

CANCELLED = "_CANCELLED"


def cancel_marker(experiment: str) -> str:
    return f"experiments/{experiment}/{CANCELLED}"


def experiment_selector(experiment: str) -> str:
    return f"{EXPERIMENT}={experiment}"


class KubernetesBackend:
    def __init__(self, store: Store, experiment: str, k: KubernetesSpec, api: KubeApi, poll_s: float = 5.0):
        self.store = store
        self.experiment = experiment
        self.k = k
        self.api = api
        self.poll_s = poll_s

    @property
    def selector(self) -> str:
        return experiment_selector(self.experiment)

    def _log_tail(self, unit: JobUnit, step_prefix: str) -> str:
        if self.store.exists(f"{step_prefix}/{LOG}"):
            return tail(self.store.read_bytes(f"{step_prefix}/{LOG}").decode(errors="replace"))
        return tail(self.api.pod_log_tail(self.k.namespace, unit.name))

    def run(self, plan: Plan, on_event: Callable[[Event], None] = lambda e: None) -> RunResult:
        result = RunResult()
        store, ns = self.store, self.k.namespace
        store.delete_prefix(cancel_marker(self.experiment))
        done = {sid for sid, s in plan.steps.items() if is_done(store, s.prefix)}
        result.already_done = len(done)
        pending = [sid for sid in plan.steps if sid not in done]
        write_step_files(store, plan, pending)
        # Grouping over every step, done or not, so a restarted controller forms the same
        # groups and finds the Jobs the last one created instead of submitting steps again.
        units = {u.name: u for u in pack_units(list(plan.steps.values()), self.k.pack)
                 if any(s.id not in done for s in u.steps)}
        started: dict[str, float] = {}
        # Jobs that gave up in an earlier run are retried once per run: delete them first.
        for name, job in self.api.jobs(ns, self.selector).items():
            if name in units and job.failed_for_good:
                self.api.delete_job(ns, name)

        def finish(unit: JobUnit, kind: str, detail: str = "") -> None:
            for s in unit.steps:
                if s.id in done:
                    continue
                if kind == "failed":
                    result.failed[s.id] = detail
                else:
                    result.blocked.append(s.id)
                on_event(Event(kind, s, time.time() - started.get(unit.name, time.time()), detail))
            del units[unit.name]

        while units:
            if store.exists(cancel_marker(self.experiment)):
                for unit in list(units.values()):
                    finish(unit, "failed", "cancelled (ctune cancel)")
                break
            jobs = self.api.jobs(ns, self.selector)
            in_flight = sum(1 for n in units if n in jobs and not (jobs[n].complete or jobs[n].failed_for_good))
            for name, unit in list(units.items()):
                for s in unit.steps:  # a packed Job commits its steps one by one
                    if s.id not in done and is_done(store, s.prefix):
                        done.add(s.id)
                        result.ran.append(s.id)
                        on_event(Event("done", s, time.time() - started.get(name, time.time())))
                todo = [s for s in unit.steps if s.id not in done]
                if not todo:
                    del units[name]
                    continue
                deps = {d for s in todo for d in plan.deps(s.id)} - {s.id for s in unit.steps}
                if any(d in result.failed or d in result.blocked for d in deps):
                    finish(unit, "blocked")
                    continue
                job = jobs.get(name)
                failure = next(((s, f) for s in todo if (f := read_failure(store, s.prefix))), None)
                if job is None:
                    if not all(d in done for d in deps) or in_flight >= self.k.max_in_flight:
                        continue
                    for s in todo:  # a bad input reported by an earlier run may have been fixed
                        store.delete_prefix(f"{s.prefix}/{FAILED}")
                    self.api.create_job(render_job(unit, self.experiment, store.root, self.k))
                    in_flight += 1
                    started.setdefault(name, time.time())
                    for s in todo:
                        on_event(Event("start", s))
                elif failure is not None:
                    self.api.delete_job(ns, name)  # retrying a bad input will not help
                    step, info = failure
                    finish(unit, "failed", f"{info['error']}\n{self._log_tail(unit, step.prefix)}".strip())
                elif job.failed_for_good:
                    finish(unit, "failed", f"Job {name}: {job.message}\n{self._log_tail(unit, todo[0].prefix)}".strip())
                elif job.complete:
                    finish(unit, "failed", f"Job {name} completed but step {todo[0].id} is not done")
            if units:
                self.api.wait_for_change(ns, self.selector, self.poll_s)
        return result
