"""Render steps as ``batch/v1`` Jobs: pure functions from specs to manifests (no API calls).

One Job per step, or per packed group of fine-tune cells that share a starting model
(``kubernetes.pack``): the pod runs the same entry point as the local backend,
``python -m jobs <kind> --step <uri> [--step <uri> ...]``, reading and writing only the
store. Names are derived from step ids, so a Job is created at most once per step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from controller.spec import KubernetesSpec
from jobs.step import StepSpec

LABEL_PREFIX = "cluster-tune.io"
EXPERIMENT = f"{LABEL_PREFIX}/experiment"
KIND = f"{LABEL_PREFIX}/kind"
STEP = f"{LABEL_PREFIX}/step"
STEPS_ANNOTATION = f"{LABEL_PREFIX}/steps"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
EXIT_BAD_INPUT = 2  # jobs/__main__.py: a bad input or parameter, retrying will not help
SCRATCH = "/scratch"
AWS_KEYS = (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False),
            ("AWS_ENDPOINT_URL", True), ("AWS_DEFAULT_REGION", True))


@dataclass(frozen=True)
class JobUnit:
    """What one Job runs: one step, or several steps of the same kind, in order."""

    steps: tuple[StepSpec, ...]

    @property
    def kind(self) -> str:
        return self.steps[0].kind

    @property
    def key(self) -> str:
        """The step id, or for a group a digest of its step ids."""
        if len(self.steps) == 1:
            return self.steps[0].id
        return hashlib.sha256(",".join(s.id for s in self.steps).encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"ct-{self.kind}-{self.key}"


def step_uri(store_root: str, step: StepSpec) -> str:
    return f"{store_root.rstrip('/')}/{step.prefix}/step.json"


def pack_units(steps: list[StepSpec], pack: int) -> list[JobUnit]:
    """Group fine-tune steps that share a starting model (same inputs but the sample) into
    Jobs of at most ``pack`` steps; every other step is a Job of its own."""
    if pack <= 1:
        return [JobUnit((s,)) for s in steps]
    units: list[JobUnit] = []
    groups: dict[tuple, list[StepSpec]] = {}
    for s in steps:
        if s.kind != "finetune":
            units.append(JobUnit((s,)))
            continue
        start = (tuple(sorted(s.inputs.items())), s.params.get("model"))
        groups.setdefault(start, []).append(s)
    for members in groups.values():
        for i in range(0, len(members), pack):
            units.append(JobUnit(tuple(members[i:i + pack])))
    return units


def _env(k: KubernetesSpec) -> list[dict]:
    env = [
        {"name": "HOME", "value": SCRATCH},
        {"name": "TMPDIR", "value": f"{SCRATCH}/tmp"},
        {"name": "CTUNE_CACHE", "value": f"{SCRATCH}/cache"},
        {"name": "HF_HOME", "value": f"{SCRATCH}/hf"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "CTUNE_LOG_TO_STORE", "value": "1"},
    ]
    for key, optional in AWS_KEYS:
        ref = {"name": k.s3_secret, "key": key}
        if optional:
            ref["optional"] = True
        env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def _resources(k: KubernetesSpec, gpu: bool) -> dict:
    requests = {"cpu": k.cpu, "memory": k.memory}
    limits = {"memory": k.memory}
    if gpu and k.gpus:
        requests[k.gpu_resource] = str(k.gpus)
        limits[k.gpu_resource] = str(k.gpus)
    return {"requests": requests, "limits": limits}


def render_job(unit: JobUnit, experiment: str, store_root: str, k: KubernetesSpec) -> dict:
    gpu = unit.kind in k.gpu_kinds and k.gpus > 0
    labels = {EXPERIMENT: experiment, KIND: unit.kind, STEP: unit.key}
    command = ["python", "-m", "jobs", unit.kind]
    for s in unit.steps:
        command += ["--step", step_uri(store_root, s)]
    prepare = f"mkdir -p {SCRATCH}/tmp {SCRATCH}/cache {SCRATCH}/hf"
    container = {
        "name": "step",
        "image": k.image,
        "imagePullPolicy": k.image_pull_policy,
        "command": ["sh", "-c", f'{prepare} && exec "$@"', "--", *command],
        "env": _env(k),
        "resources": _resources(k, gpu),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
    }
    pod_spec: dict = {
        "restartPolicy": "Never",
        "serviceAccountName": k.service_account,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    if gpu:
        if k.node_selector:
            pod_spec["nodeSelector"] = dict(sorted(k.node_selector.items()))
        if k.tolerations:
            pod_spec["tolerations"] = [{key: v for key, v in (("key", t.key), ("operator", t.operator),
                                                             ("value", t.value), ("effect", t.effect)) if v}
                                       for t in k.tolerations]
    if k.priority_class:
        pod_spec["priorityClassName"] = k.priority_class
    job_labels = dict(labels)
    if k.queue:
        job_labels[QUEUE_LABEL] = k.queue
    job_spec: dict = {
        "backoffLimit": k.backoff_limit,
        "activeDeadlineSeconds": k.active_deadline_s,
        "ttlSecondsAfterFinished": k.ttl_after_finished_s,
        # honoured from Kubernetes 1.26; older servers drop it and the controller stops
        # such Jobs itself when a step reports a bad input
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
            "containerName": "step", "operator": "In", "values": [EXIT_BAD_INPUT]}}]},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if k.queue:
        job_spec["suspend"] = True  # Kueue admits (unsuspends) it
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": unit.name,
            "namespace": k.namespace,
            "labels": job_labels,
            "annotations": {STEPS_ANNOTATION: ",".join(s.id for s in unit.steps)},
        },
        "spec": job_spec,
    }
