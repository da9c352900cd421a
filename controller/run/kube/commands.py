"""``ctune run --backend kubernetes`` wiring and ``ctune status | logs | cancel``."""

from __future__ import annotations

import sys
from collections import Counter

from controller.plan.graph import Plan
from controller.plan.packing import JobUnit
from controller.plan.spec import ExperimentSpec
from controller.run.kube.api import KubeApi, KubeError, load_api_client
from controller.run.kube.backend import KubernetesBackend, cancel_marker, experiment_selector
from controller.run.kube.config import kube_config
from controller.run.runstate import run_state
from jobs.contract.steps import LOG
from jobs.storage import Store


def kube_api(kubeconfig: str | None, namespace: str) -> KubeApi:
    api = KubeApi(load_api_client(kubeconfig))
    api.check(namespace)
    return api


def kubernetes_backend(spec: ExperimentSpec, store: Store, kubeconfig: str | None,
                       poll_s: float = 5.0) -> KubernetesBackend:
    if not store.root.startswith("s3://"):
        raise KubeError(f"the kubernetes backend needs an s3:// store that pods can reach, not {store.root} "
                        "(set store: in the spec, --store or $CTUNE_STORE)")
    return KubernetesBackend(store, spec.name, kube_config(spec), kube_api(kubeconfig, kube_config(spec).namespace),
                             poll_s=poll_s)


def print_status(spec: ExperimentSpec, store: Store, plan: Plan, kubeconfig: str | None, with_jobs: bool) -> None:
    state = run_state(store, plan)
    print(f"{spec.name}: store {store.root}")
    for kind, c in state.counts.items():
        running = f"  {c['running']:>5} running" if c["running"] else ""
        print(f"  {kind:<10} {c['done']:>5} done  {c['to do'] + c['failed']:>5} to do{running}")
    for step in state.running:
        print(f"  running: {step.kind} {step.step} ({step.label}): {step.progress.line() if step.progress else 'started'}")
    for step in state.failed:
        print(f"  failed: {step.kind} {step.step} ({step.label}): {step.error}")
    if store.exists(cancel_marker(spec.name)):
        print("  cancelled: the last run was cancelled")
    if with_jobs:
        api = kube_api(kubeconfig, kube_config(spec).namespace)
        jobs = api.jobs(kube_config(spec).namespace, experiment_selector(spec.name))
        states = Counter("failed" if j.failed_for_good else "complete" if j.complete else "active"
                         for j in jobs.values())
        print(f"  Jobs in {kube_config(spec).namespace}: {len(jobs)} ("
              + ", ".join(f"{n} {state}" for state, n in sorted(states.items())) + ")")


def print_logs(spec: ExperimentSpec, store: Store, plan: Plan, step_id: str, kubeconfig: str | None,
               with_jobs: bool) -> int:
    step = plan.find(step_id, spec.name)
    if store.exists(f"{step.prefix}/{LOG}"):
        sys.stdout.write(store.read_bytes(f"{step.prefix}/{LOG}").decode(errors="replace"))
        return 0
    if with_jobs:
        api = kube_api(kubeconfig, kube_config(spec).namespace)
        text = api.pod_log_tail(kube_config(spec).namespace, JobUnit((step,)).name, lines=10_000)
        if text:
            sys.stdout.write(text)
            return 0
    raise KubeError(f"no log for step {step.id} yet")


def cancel(spec: ExperimentSpec, store: Store, kubeconfig: str | None) -> int:
    """Stop a run: mark it cancelled in the store (a running controller stops) and delete the
    experiment's Jobs by label (their pods go with them)."""
    store.write_bytes(cancel_marker(spec.name), b"cancelled\n")
    api = kube_api(kubeconfig, kube_config(spec).namespace)
    jobs = api.jobs(kube_config(spec).namespace, experiment_selector(spec.name))
    for name in jobs:
        api.delete_job(kube_config(spec).namespace, name)
    return len(jobs)
