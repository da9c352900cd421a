"""The few Kubernetes API calls the backend makes, with retries on transient errors.

Everything else (what to submit, when a step is done) is decided from the store and the
Jobs' labels, so a controller restarted at any moment sees what the last one left.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jobs.contract.errors import CtuneError

T = TypeVar("T")
TRANSIENT = {429, 500, 502, 503, 504}


class KubeError(CtuneError, RuntimeError):
    """The cluster cannot be reached or refused a request (one line, for the user)."""


def load_api_client(kubeconfig: str | None = None, context: str | None = None):
    """A client from --kubeconfig, $KUBECONFIG or ~/.kube/config, else the in-cluster config."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path or os.path.exists(os.path.expanduser("~/.kube/config")):
            return config.new_client_from_config(config_file=path, context=context)
        config.load_incluster_config()
        from kubernetes import client

        return client.ApiClient()
    except (ConfigException, OSError) as exc:
        raise KubeError(f"no usable Kubernetes configuration: {str(exc).splitlines()[0]}") from None


@dataclass
class JobState:
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active: int
    succeeded: int
    failed: int
    complete: bool
    failed_for_good: bool
    """The Job controller gave up (backoff limit, deadline) or the Job was stopped."""
    message: str = ""


def scheduler_message(pod: Any) -> str | None:
    """Why the scheduler could not place ``pod`` (its ``PodScheduled`` condition is false), on
    one line; None when that condition is not false."""
    waiting = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled" and c.status == "False"), None)
    return None if waiting is None else " ".join((waiting.message or waiting.reason or "not scheduled").split())


class KubeApi:
    def __init__(self, api_client, retries: int = 5, backoff_s: float = 0.5):
        from kubernetes import client

        if not api_client.configuration.verify_ssl:  # the kubeconfig asks for it: say it once, not per call
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.retries = retries
        self.backoff_s = backoff_s
        self._resource_version: str | None = None

    def _call(self, what: str, fn: Callable[[], T], ok_status: tuple[int, ...] = ()) -> T | None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        for attempt in range(self.retries + 1):
            try:
                return fn()
            except ApiException as exc:
                if exc.status in ok_status:
                    return None
                if exc.status not in TRANSIENT or attempt == self.retries:
                    raise KubeError(f"{what}: {exc.status} {exc.reason}: {_message(exc)}") from None
            except (HTTPError, OSError) as exc:
                if attempt == self.retries:
                    raise KubeError(f"{what}: cannot reach the Kubernetes API ({type(exc).__name__})") from None
            time.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

    def check(self, namespace: str) -> None:
        retries, self.retries = self.retries, 2
        try:
            self._call(f"listing Jobs in namespace {namespace}",
                       lambda: self.batch.list_namespaced_job(namespace, limit=1, _request_timeout=10))
        finally:
            self.retries = retries

    def create_job(self, manifest: dict) -> bool:
        """Create the Job; False when a Job of that name exists already (409)."""
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        created = self._call(f"creating Job {name}", lambda: self.batch.create_namespaced_job(ns, manifest),
                             ok_status=(409,))
        return created is not None

    def jobs(self, namespace: str, selector: str) -> dict[str, JobState]:
        listed: Any = self._call(f"listing Jobs ({selector})",
                                 lambda: self.batch.list_namespaced_job(namespace, label_selector=selector))
        self._resource_version = listed.metadata.resource_version
        return {j.metadata.name: _state(j) for j in listed.items}

    def wait_for_change(self, namespace: str, selector: str, timeout_s: float) -> None:
        """Block until a Job event arrives or ``timeout_s`` passes (a watch, not a busy loop)."""
        from kubernetes import watch

        w = watch.Watch()
        since = {"resource_version": self._resource_version} if self._resource_version else {}
        try:
            for _ in w.stream(self.batch.list_namespaced_job, namespace, label_selector=selector,
                              timeout_seconds=max(1, int(timeout_s)), _request_timeout=timeout_s + 5, **since):
                break  # any change after the last listing wakes us up
        except Exception:  # a broken watch only means we look again sooner
            time.sleep(min(timeout_s, 1.0))
        finally:
            w.stop()

    def delete_job(self, namespace: str, name: str) -> None:
        self._call(f"deleting Job {name}", lambda: self.batch.delete_namespaced_job(
            name, namespace, propagation_policy="Background"), ok_status=(404,))

    def unscheduled(self, namespace: str, selector: str) -> dict[str, str]:
        """The scheduler's message for each Job (by name) whose pod it cannot place: pending,
        ``PodScheduled`` false (e.g. ``0/3 nodes are available: 3 Insufficient nvidia.com/gpu.``)."""
        pods: Any = self._call(f"listing Pods ({selector})",
                               lambda: self.core.list_namespaced_pod(namespace, label_selector=selector))
        out: dict[str, str] = {}
        for pod in pods.items:
            job = (pod.metadata.labels or {}).get("job-name")
            if not job or pod.status.phase != "Pending" or pod.metadata.deletion_timestamp:
                continue
            message = scheduler_message(pod)
            if message is not None:
                out[job] = message
        return out

    def pod_log_tail(self, namespace: str, job_name: str, lines: int = 15) -> str:
        """The last lines of the newest Pod of a Job ('' where the cluster keeps none)."""
        try:
            pods: Any = self._call("listing Pods", lambda: self.core.list_namespaced_pod(
                namespace, label_selector=f"job-name={job_name}"))
            if not pods.items:
                return ""
            newest = max(pods.items, key=lambda p: p.metadata.creation_timestamp)
            return self.core.read_namespaced_pod_log(newest.metadata.name, namespace, tail_lines=lines) or ""
        except Exception:
            return ""


def _message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", "")[:300]
    except Exception:
        return str(exc.body or "")[:300]


def _state(job) -> JobState:
    conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"}
    failed = conditions.get("Failed")
    return JobState(
        name=job.metadata.name,
        labels=dict(job.metadata.labels or {}),
        annotations=dict(job.metadata.annotations or {}),
        active=job.status.active or 0,
        succeeded=job.status.succeeded or 0,
        failed=job.status.failed or 0,
        complete="Complete" in conditions,
        failed_for_good=failed is not None,
        message=(failed.message or failed.reason or "") if failed else "",
    )
