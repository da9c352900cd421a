"""Render steps as ``batch/v1`` Jobs: pure functions from specs to manifests (no API calls).

One Job per step, or per packed group of fine-tune cells that share a starting model
(``kubernetes.pack``, ``auto`` by default; see ``controller.plan.packing``): the pod runs
the same entry point as the local backend,
``python -m jobs <kind> --step <uri> [--step <uri> ...]``, reading and writing only the
store. Names are derived from step ids, so a Job is created at most once per step.
"""

from __future__ import annotations

from controller.plan.packing import AUTO_PACK, JobUnit, pack_units, packable
from controller.run.kube.config import KubernetesSpec
from jobs.contract.errors import EXIT_BAD_INPUT
from jobs.contract.steps import step_uri

__all__ = ["JobUnit", "pack_units", "render_job", "unit_sizes"]

LABEL_PREFIX = "cluster-tune.io"
EXPERIMENT = f"{LABEL_PREFIX}/experiment"
KIND = f"{LABEL_PREFIX}/kind"
STEP = f"{LABEL_PREFIX}/step"
STEPS_ANNOTATION = f"{LABEL_PREFIX}/steps"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CONTAINER = "step"
SCRATCH = "/scratch"
AWS_KEYS = (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False),
            ("AWS_ENDPOINT_URL", True), ("AWS_DEFAULT_REGION", True))


def unit_sizes(k: KubernetesSpec) -> dict[str, int]:
    """Cells per Job, by kind: ``pack`` as given, or with ``auto`` a pack of ``AUTO_PACK`` for
    cells on a GPU (a pod start and a model load cost more than a 64-label cell's training)
    and for the CPU cells (``classic``: seconds each)."""
    if k.pack != "auto":
        return {kind: int(k.pack) for kind in packable()}
    return {kind: AUTO_PACK if (kind not in k.gpu_kinds or k.gpus > 0) else 1 for kind in packable()}


def _env(k: KubernetesSpec, job: str) -> list[dict]:
    env: list[dict] = [
        {"name": "HOME", "value": SCRATCH},
        {"name": "TMPDIR", "value": f"{SCRATCH}/tmp"},
        {"name": "CTUNE_CACHE", "value": f"{SCRATCH}/cache"},
        {"name": "HF_HOME", "value": f"{SCRATCH}/hf"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "CTUNE_LOG_TO_STORE", "value": "1"},
        # the Job is the claimant: its retried pod takes over the steps of the one that died
        {"name": "CTUNE_CLAIM_OWNER", "value": f"job/{k.namespace}/{job}"},
    ]
    return env + _s3_env(k)


def _s3_env(k: KubernetesSpec) -> list[dict]:
    refs = [{"name": k.s3_secret, "key": key, **({"optional": True} if optional else {})} for key, optional in AWS_KEYS]
    return [{"name": ref["key"], "valueFrom": {"secretKeyRef": ref}} for ref in refs]


CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                      "capabilities": {"drop": ["ALL"]}}


def _resources(k: KubernetesSpec, gpu: bool) -> dict:
    requests = {"cpu": k.cpu, "memory": k.memory}
    limits = {"memory": k.memory}
    if gpu and k.gpus:
        requests[k.gpu_resource] = str(k.gpus)
        limits[k.gpu_resource] = str(k.gpus)
    return {"requests": requests, "limits": limits}


def _command(unit: JobUnit, store_root: str, workers: int) -> list[str]:
    command = ["python", "-m", "jobs", unit.kind]
    if workers > 1 and len(unit.steps) > 1:
        command += ["--workers", str(min(workers, len(unit.steps)))]
    for s in unit.steps:
        command += ["--step", step_uri(store_root, s.prefix)]
    prepare = f"mkdir -p {SCRATCH}/tmp {SCRATCH}/cache {SCRATCH}/hf"
    return ["sh", "-c", f'{prepare} && exec "$@"', "--", *command]


def _container(unit: JobUnit, store_root: str, k: KubernetesSpec, gpu: bool) -> dict:
    return {
        "name": CONTAINER,
        "image": k.image,
        "imagePullPolicy": k.image_pull_policy,
        "command": _command(unit, store_root, k.workers),
        "env": _env(k, unit.name),
        "resources": _resources(k, gpu),
        "securityContext": dict(CONTAINER_SECURITY, capabilities={"drop": ["ALL"]}),
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
    }


def _gpu_scheduling(k: KubernetesSpec) -> dict:
    out: dict = {}
    if k.node_selector:
        out["nodeSelector"] = dict(sorted(k.node_selector.items()))
    if k.tolerations:
        out["tolerations"] = [{key: v for key, v in (("key", t.key), ("operator", t.operator),
                                                     ("value", t.value), ("effect", t.effect)) if v}
                              for t in k.tolerations]
    return out


def _pod_spec(unit: JobUnit, store_root: str, k: KubernetesSpec, gpu: bool) -> dict:
    return _pod(_container(unit, store_root, k, gpu), k, gpu)


def _pod(container: dict, k: KubernetesSpec, gpu: bool) -> dict:
    """One container, unprivileged, with a scratch volume and no API token."""
    pod: dict = {
        "restartPolicy": "Never",
        "serviceAccountName": k.service_account,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    if gpu:
        pod.update(_gpu_scheduling(k))
    if k.host_network:
        pod.update(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    if k.priority_class:
        pod["priorityClassName"] = k.priority_class
    return pod


def _job_spec(pod_labels: dict, pod: dict, k: KubernetesSpec) -> dict:
    spec: dict = {
        "backoffLimit": k.backoff_limit,
        "activeDeadlineSeconds": k.active_deadline_s,
        "ttlSecondsAfterFinished": k.ttl_after_finished_s,
        # honoured from Kubernetes 1.26; older servers drop it and the controller stops
        # such Jobs itself when a step reports a bad input
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
            "containerName": CONTAINER, "operator": "In", "values": [EXIT_BAD_INPUT]}}]},
        "template": {"metadata": {"labels": pod_labels}, "spec": pod},
    }
    if k.queue:
        spec["suspend"] = True  # Kueue admits (unsuspends) it
    return spec


def render_job(unit: JobUnit, experiment: str, store_root: str, k: KubernetesSpec) -> dict:
    gpu = unit.kind in k.gpu_kinds and k.gpus > 0
    labels = {EXPERIMENT: experiment, KIND: unit.kind, STEP: unit.key}
    job_labels = {**labels, **({QUEUE_LABEL: k.queue} if k.queue else {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": unit.name,
            "namespace": k.namespace,
            "labels": job_labels,
            "annotations": {STEPS_ANNOTATION: ",".join(s.id for s in unit.steps)},
        },
        "spec": _job_spec(labels, _pod_spec(unit, store_root, k, gpu), k),
    }


SCORING = f"{LABEL_PREFIX}/scoring"
"""The label of a batch scoring run's Jobs (its run id)."""


def render_scoring_job(name: str, run: str, args: list[str], k: KubernetesSpec) -> dict:
    """A Job in the controller image running ``ctune <args>`` (batch scoring: onnxruntime, no
    torch, no GPU). Its pod retried after a kill goes on where the last one stopped: the work is
    skipped where its output is in the store."""
    env = [{"name": "HOME", "value": SCRATCH}, {"name": "TMPDIR", "value": SCRATCH},
           {"name": "CTUNE_CACHE", "value": f"{SCRATCH}/cache"}, {"name": "PYTHONUNBUFFERED", "value": "1"}]
    container = {
        "name": CONTAINER,
        "image": k.controller_image,
        "imagePullPolicy": k.image_pull_policy,
        "args": list(args),
        "env": env + _s3_env(k),
        "resources": _resources(k, gpu=False),
        "securityContext": dict(CONTAINER_SECURITY, capabilities={"drop": ["ALL"]}),
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
    }
    labels = {SCORING: run}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": k.namespace,
                         "labels": {**labels, **({QUEUE_LABEL: k.queue} if k.queue else {})}},
            "spec": _job_spec(labels, _pod(container, k, gpu=False), k)}
