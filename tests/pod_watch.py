"""What the real node ran, for the Kubernetes tier's assertions: every Pod seen, the node it
was bound to, its command, exit code and log, and which Pods held a GPU at the same time.

A thread lists the cluster's Pods, then watches every change to them (a Job's Pods outlive
it only until it is deleted, and a Pod may end and go within a second: each state is recorded
as it comes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from controller.run.kube.api import scheduler_message

GPU = "nvidia.com/gpu"


@dataclass
class PodRun:
    namespace: str
    name: str
    job: str | None
    command: list[str]
    gpus: int
    started: float
    """When the Pod was first seen."""
    bound: float = 0.0
    """When it was first seen bound to a node (0: never)."""
    ended: float = 0.0
    """When it was first seen Succeeded or Failed, or gone."""
    exit_code: int | None = None
    """The container's exit code as the kubelet reported it; None when it never did (the Pod
    was deleted, or its status lost the container, before a terminated state was recorded)."""
    node: str = ""
    output: str = ""
    waiting: str = ""
    """The scheduler's last message while it could not be placed."""
    states: list[str] = field(default_factory=list)
    """Each distinct status seen (phase, container state, deleting), for a failure's message."""


@dataclass
class PodWatch:
    core: object
    """A ``kubernetes.client.CoreV1Api``."""
    interval: float = 0.25
    runs: list[PodRun] = field(default_factory=list)
    _by_uid: dict[str, PodRun] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PodWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="pod-watch")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:  # a listing, then every change as it happens (a Pod may live for less than a second)
                listed = self.core.list_pod_for_all_namespaces()  # type: ignore[attr-defined]
                live = {p.metadata.uid for p in listed.items}
                for pod in listed.items:
                    self._see(pod)
                for uid, run in self._by_uid.items():
                    if uid not in live and not run.ended:
                        run.ended = time.time()
                        run.states.append("gone")
                stream = watch.Watch()
                for event in stream.stream(self.core.list_pod_for_all_namespaces,  # type: ignore[attr-defined]
                                           resource_version=listed.metadata.resource_version, timeout_seconds=20):
                    self._see(event["object"], gone=event["type"] == "DELETED")
                    if self._stop.is_set():
                        stream.stop()
            except Exception:  # the API server may be restarting, or the watch expired: list again
                self._stop.wait(self.interval)

    def _see(self, pod, gone: bool = False) -> None:
        now = time.time()
        uid = pod.metadata.uid
        run = self._by_uid.get(uid)
        if run is None:
            container = pod.spec.containers[0]
            limits = (container.resources.limits or {}) if container.resources else {}
            run = PodRun(pod.metadata.namespace, pod.metadata.name, (pod.metadata.labels or {}).get("job-name"),
                         list(container.command or []) + list(container.args or []), int(limits.get(GPU, 0)), now)
            self._by_uid[uid] = run
            self.runs.append(run)
        if pod.spec.node_name and not run.bound:
            run.bound, run.node = now, pod.spec.node_name
        message = scheduler_message(pod)
        if message is not None:
            run.waiting = message
        seen = _state(pod, gone)
        if not run.states or run.states[-1] != seen:
            run.states.append(seen)
        terminated = [s.state.terminated for s in pod.status.container_statuses or [] if s.state and s.state.terminated]
        if terminated and run.exit_code is None:
            run.exit_code = terminated[0].exit_code
        if not run.ended and (gone or pod.status.phase in ("Succeeded", "Failed")):
            self._ended(run, pod, now, gone)

    def _ended(self, run: PodRun, pod, now: float, gone: bool) -> None:
        run.ended = now
        if run.exit_code is None and not gone and pod.status.phase == "Succeeded":
            run.exit_code = 0
        try:  # through the API server from the kubelet (127.0.0.1:10250)
            run.output = self.core.read_namespaced_pod_log(run.name, run.namespace) or ""  # type: ignore[attr-defined]
        except Exception as exc:
            run.output = f"(no log: {exc})"

    def of(self, namespace: str, settle_s: float = 60) -> list[PodRun]:
        """The namespace's Pods, once each has ended (a step commits before its container is gone)."""
        deadline = time.time() + settle_s
        while any(not r.ended for r in self.runs if r.namespace == namespace) and time.time() < deadline:
            time.sleep(0.2)
        return [r for r in self.runs if r.namespace == namespace]


def deleted(run: PodRun) -> bool:
    """Whether the Pod was seen being deleted, or gone."""
    return any(s.endswith(("deleting", "gone")) for s in run.states)


def _state(pod, gone: bool) -> str:
    containers = []
    for c in pod.status.container_statuses or []:
        st = c.state
        if st and st.terminated:
            containers.append(f"terminated({st.terminated.exit_code}, {st.terminated.reason}, "
                              f"id={'yes' if st.terminated.container_id else 'none'})")
        elif st and st.running:
            containers.append("running")
        elif st and st.waiting:
            containers.append(f"waiting({st.waiting.reason})")
    deleting = " deleting" if pod.metadata.deletion_timestamp else ""
    return f"{pod.status.phase}[{', '.join(containers)}]{deleting}{' gone' if gone else ''}"


def peak_at_once(runs: list[PodRun]) -> int:
    """The most Pods bound to a node and not ended at one moment."""
    edges = sorted([(r.bound, 1) for r in runs if r.bound] + [(r.ended or time.time(), -1) for r in runs if r.bound])
    peak = now = 0
    for _, step in edges:  # an end before a start at the same instant: -1 sorts first
        now += step
        peak = max(peak, now)
    return peak
