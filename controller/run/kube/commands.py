"""``ctune run --backend kubernetes`` wiring, what the cluster adds to ``ctune status | logs``, and ``ctune cancel``."""

from __future__ import annotations

from collections import Counter

from controller.plan.packing import JobUnit
from controller.plan.spec import ExperimentSpec
from controller.run.backends.base import cancel_marker
from controller.run.kube.api import KubeApi, KubeError, load_api_client
from controller.run.kube.backend import KubernetesBackend, experiment_selector
from controller.run.kube.config import KubernetesSpec, kube_config
from controller.run.kube.render import STEPS_ANNOTATION
from jobs.contract.steps import StepSpec
from jobs.storage import Store


def kube_api(kubeconfig: str | None, namespace: str) -> KubeApi:
    api = KubeApi(load_api_client(kubeconfig))
    api.check(namespace)
    return api


def kubernetes_backend(spec: ExperimentSpec, store: Store, kubeconfig: str | None,
                       poll_s: float = 5.0) -> KubernetesBackend:
    return section_backend(kube_config(spec), spec.name, store, kubeconfig, poll_s)


def section_backend(k: KubernetesSpec, experiment: str, store: Store, kubeconfig: str | None,
                    poll_s: float = 5.0) -> KubernetesBackend:
    """The backend for ``experiment``'s steps, with the settings of a ``kubernetes:`` section."""
    if not store.root.startswith("s3://"):
        raise KubeError(f"the kubernetes backend needs an s3:// store that pods can reach, not {store.root} "
                        "(set store: in the spec, --store or $CTUNE_STORE)")
    return KubernetesBackend(store, experiment, k, kube_api(kubeconfig, k.namespace), poll_s=poll_s)


class KubeJobsView:
    """What the cluster adds to ``ctune status`` and ``ctune logs`` (``JobsView``)."""

    def __init__(self, spec: ExperimentSpec, kubeconfig: str | None):
        self.experiment = spec.name
        self.namespace = kube_config(spec).namespace
        self.api = kube_api(kubeconfig, self.namespace)

    def jobs_line(self) -> str:
        jobs = self.api.jobs(self.namespace, experiment_selector(self.experiment))
        states = Counter("failed" if j.failed_for_good else "complete" if j.complete else "active"
                         for j in jobs.values())
        line = f"Jobs in {self.namespace}: {len(jobs)} (" + ", ".join(f"{n} {state}" for state, n in sorted(states.items())) + ")"
        waiting = self.api.unscheduled(self.namespace, experiment_selector(self.experiment))
        steps = {name: job.annotations.get(STEPS_ANNOTATION, "").split(",")[0] for name, job in jobs.items()}
        return "\n".join([line, *(f"  waiting: Job {name} (step {steps.get(name, '?')[:12]}) is not scheduled: {message}"
                                  for name, message in sorted(waiting.items()))])

    def log_tail(self, step: StepSpec) -> str:
        return self.api.pod_log_tail(self.namespace, JobUnit((step,)).name, lines=10_000)


def cancel(spec: ExperimentSpec, store: Store, kubeconfig: str | None) -> int:
    """Stop a run: mark it cancelled in the store (a running controller stops) and delete the
    experiment's Jobs by label (their pods go with them)."""
    store.write_bytes(cancel_marker(spec.name), b"cancelled\n")
    api = kube_api(kubeconfig, kube_config(spec).namespace)
    jobs = api.jobs(kube_config(spec).namespace, experiment_selector(spec.name))
    for name in jobs:
        api.delete_job(kube_config(spec).namespace, name)
    return len(jobs)
