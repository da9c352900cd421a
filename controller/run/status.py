"""``ctune status`` and ``ctune logs``, for any backend: what the store says of a run, and
what the backend adds (``JobsView``: the Kubernetes Jobs, a pod's log before the step's own)."""

from __future__ import annotations

import sys

from controller.plan.graph import Plan
from controller.run.backends.base import JobsView, cancel_marker
from controller.run.runstate import run_state
from jobs.contract.errors import CtuneError
from jobs.contract.steps import LOG
from jobs.storage import Store


def print_status(experiment: str, store: Store, plan: Plan, view: JobsView | None = None) -> None:
    state = run_state(store, plan)
    print(f"{experiment}: store {store.root}")
    for kind, c in state.counts.items():
        running = f"  {c['running']:>5} running" if c["running"] else ""
        print(f"  {kind:<10} {c['done']:>5} done  {c['to do'] + c['failed']:>5} to do{running}")
    for step in state.running:
        print(f"  running: {step.kind} {step.step} ({step.label}): {step.progress.line() if step.progress else 'started'}")
    for step in state.failed:
        print(f"  failed: {step.kind} {step.step} ({step.label}): {step.error}")
    if store.exists(cancel_marker(experiment)):
        print("  cancelled: the last run was cancelled")
    if view is not None:
        print("\n".join(f"  {line}" for line in view.jobs_line().splitlines()))


def print_logs(experiment: str, store: Store, plan: Plan, step_id: str, view: JobsView | None = None) -> int:
    step = plan.find(step_id, experiment)
    if store.exists(f"{step.prefix}/{LOG}"):
        sys.stdout.write(store.read_bytes(f"{step.prefix}/{LOG}").decode(errors="replace"))
        return 0
    text = view.log_tail(step) if view is not None else ""
    if text:
        sys.stdout.write(text)
        return 0
    raise CtuneError(f"no log for step {step.id} yet")
