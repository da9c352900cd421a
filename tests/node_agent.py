"""A stand-in for a node (scheduler + kubelet) for the integration tier.

Watches Pods and runs each one as a kubelet would: in **container** mode with podman, from
the Pod's own image, command and args, env (secretKeyRef values read from the Secret),
securityContext (runAsUser/Group, fsGroup, read-only root with no implicit tmpfs,
no-new-privileges, dropped capabilities), ``emptyDir`` and ``configMap`` volumes, the
ServiceAccount's token, CA and namespace when the Pod mounts them, memory and CPU limits, and
the host's network (the test S3 and API server listen on loopback). A Pod deleted while it
runs has its container stopped (SIGTERM, SIGKILL after 30 s), as a kubelet does. In
**process** mode (only where podman cannot run) the container's command runs as a local
process with the Pod's env and volumes, the project's Python first on PATH. The Pod's status
is patched Running, then Succeeded or Failed with the exit code, which drives the real Job
controller. Output is kept per Pod (``runs``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "images/containers.conf"))}


def podman_works(image: str) -> str | None:
    """Why containers cannot run here (None when they can)."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    probe = subprocess.run(["podman", "run", "--rm", "--network", "host", "--entrypoint", "true", image],
                           capture_output=True, text=True, env=podman_env(), timeout=120)
    return None if probe.returncode == 0 else f"podman cannot run {image}: {probe.stderr.strip()[-300:]}"


@dataclass
class PodRun:
    namespace: str
    name: str
    job: str | None
    command: list[str]
    exit_code: int | None = None
    output: str = ""
    container: str = ""
    started: float = 0.0
    """When the agent saw the Pod; ``running_at``: when its command began (container started)."""
    running_at: float = 0.0


@dataclass
class NodeAgent:
    kubeconfig: str
    containers: bool = True
    """Run Pods as podman containers (else as local processes)."""
    token: tuple[str, str] | None = None
    """(token, CA file) a Pod that mounts its ServiceAccount token gets."""
    api_server: str = ""
    """``https://host:port`` of the API server, for in-cluster configuration."""
    fail_first: set[str] = field(default_factory=set)
    """Job-name prefixes whose first Pod is failed (exit 137, as if the node died) without running."""
    runs: list[PodRun] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _seen: set[str] = field(default_factory=set)
    _threads: list[threading.Thread] = field(default_factory=list)
    _running: dict[str, PodRun] = field(default_factory=dict)

    def start(self) -> NodeAgent:
        from kubernetes import client, config

        self.api = client.CoreV1Api(config.new_client_from_config(self.kubeconfig))
        t = threading.Thread(target=self._loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for run in list(self._running.values()):
            self._kill(run)
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.api.list_pod_for_all_namespaces().items
            except Exception:  # the API server may be restarting; keep polling
                time.sleep(0.5)
                continue
            live = {p.metadata.uid for p in pods if not p.metadata.deletion_timestamp}
            for uid, run in list(self._running.items()):
                if uid not in live:  # deleted while it runs: as a kubelet, stop its container
                    self._kill(run)
            for pod in pods:
                uid = pod.metadata.uid
                if uid in self._seen or pod.status.phase != "Pending" or pod.metadata.deletion_timestamp:
                    continue
                self._seen.add(uid)
                t = threading.Thread(target=self._run_pod, args=(pod,), daemon=True)
                t.start()
                self._threads.append(t)
            time.sleep(0.3)

    def _kill(self, run: PodRun) -> None:
        """As a kubelet ends a deleted Pod: SIGTERM, then SIGKILL after the grace period."""
        if run.container:
            threading.Thread(target=subprocess.run, args=(["podman", "stop", "--time", "30", run.container],),
                             kwargs={"capture_output": True, "env": podman_env()}, daemon=True).start()

    def _env(self, namespace: str, container) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = var.value
            elif var.value_from and var.value_from.secret_key_ref:
                ref = var.value_from.secret_key_ref
                try:
                    secret = self.api.read_namespaced_secret(ref.name, namespace)
                    data = (secret.data or {}).get(ref.key)
                except Exception:
                    data = None
                if data is not None:
                    env[var.name] = base64.b64decode(data).decode()
                elif not ref.optional:
                    raise RuntimeError(f"secret {ref.name} has no key {ref.key}")
        return env

    def _status(self, pod, phase: str, exit_code: int | None = None, reason: str = "") -> None:
        container = pod.spec.containers[0]
        status: dict = {"phase": phase, "startTime": _now()}
        if exit_code is None:
            state = {"running": {"startedAt": _now()}}
        else:
            state = {"terminated": {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                                    "startedAt": _now(), "finishedAt": _now()}}
        status["containerStatuses"] = [{"name": container.name, "image": container.image, "imageID": "",
                                        "ready": exit_code is None, "restartCount": 0, "state": state}]
        try:
            self.api.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})
        except Exception:
            pass  # the Pod may be gone (its Job was deleted)

    def _volumes(self, pod, work: Path, uid: int, gid: int) -> dict[str, str]:
        """Host folders for the Pod's volumes, by name (emptyDir, configMap, the SA token)."""
        out: dict[str, str] = {}
        for volume in pod.spec.volumes or []:
            folder = work / "volumes" / volume.name
            folder.mkdir(parents=True)
            if volume.config_map is not None:
                cm = self.api.read_namespaced_config_map(volume.config_map.name, pod.metadata.namespace)
                for key, value in (cm.data or {}).items():
                    (folder / key).write_text(value)
            os.chown(folder, uid, gid)
            for path in folder.iterdir():
                os.chown(path, uid, gid)
            out[volume.name] = str(folder)
        return out

    def _token_folder(self, pod, work: Path, uid: int, gid: int) -> str | None:
        if not self.token or pod.spec.automount_service_account_token is False:
            return None
        folder = work / "serviceaccount"
        folder.mkdir()
        (folder / "token").write_text(self.token[0])
        shutil.copy(self.token[1], folder / "ca.crt")
        (folder / "namespace").write_text(pod.metadata.namespace)
        for path in (folder, *folder.iterdir()):
            os.chown(path, uid, gid)
        return str(folder)

    def _podman_argv(self, pod, container, env: dict[str, str], mounts: dict[str, str], work: Path,
                     name: str) -> list[str]:
        sec = pod.spec.security_context
        csec = container.security_context
        uid = (csec.run_as_user if csec and csec.run_as_user is not None else sec.run_as_user if sec else None)
        gid = sec.run_as_group if sec and sec.run_as_group is not None else uid
        argv = ["podman", "run", "--rm", "--name", name, "--network", "host"]
        if uid is not None:
            argv += ["--user", f"{uid}:{gid}"]
        if sec and sec.fs_group is not None:
            argv += ["--group-add", str(sec.fs_group)]
        if csec and csec.read_only_root_filesystem:
            argv += ["--read-only", "--read-only-tmpfs=false"]
        if csec and csec.allow_privilege_escalation is False:
            argv += ["--security-opt", "no-new-privileges"]
        for cap in (csec.capabilities.drop or []) if csec and csec.capabilities else []:
            argv += ["--cap-drop", cap]
        limits = (container.resources.limits or {}) if container.resources else {}
        if "memory" in limits:
            argv += ["--memory", limits["memory"].replace("Gi", "g").replace("Mi", "m")]
        if "cpu" in limits:
            argv += ["--cpus", limits["cpu"]]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        for mount in container.volume_mounts or []:
            host = mounts.get(mount.name)
            if host:
                argv += ["-v", f"{host}:{mount.mount_path}" + (":ro" if mount.read_only else "")]
        if (token := self._token_folder(pod, work, uid or 0, gid or 0)) is not None:
            argv += ["-v", f"{token}:{TOKEN_PATH}:ro"]
        command = list(container.command or [])
        if command:
            argv += ["--entrypoint", json.dumps(command)]
        return [*argv, container.image, *(container.args or [])]

    def _process_argv(self, container, env: dict[str, str], mounts: dict[str, str]) -> tuple[list[str], dict]:
        paths = {m.mount_path: mounts[m.name] for m in container.volume_mounts or [] if m.name in mounts}

        def remap(s: str) -> str:
            for path, local in paths.items():
                s = s.replace(path, local)
            return s

        argv = [remap(a) for a in list(container.command or []) + list(container.args or [])]
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
               **{k: remap(v) for k, v in env.items()}}
        return argv, env

    def _launch(self, pod, run: PodRun, work: Path) -> subprocess.CompletedProcess:
        container = pod.spec.containers[0]
        env = self._env(pod.metadata.namespace, container)
        if self.api_server:  # what a kubelet gives every Pod, for in-cluster configuration
            host, port = self.api_server.removeprefix("https://").rsplit(":", 1)
            env.update(KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=port)
        sec = pod.spec.security_context
        uid = sec.run_as_user if sec and sec.run_as_user is not None else 0
        gid = sec.fs_group if sec and sec.fs_group is not None else uid
        mounts = self._volumes(pod, work, uid, gid)
        (work / "cwd").mkdir()
        run.running_at = time.time()
        if self.containers:
            run.container = f"pod-{pod.metadata.namespace}-{pod.metadata.name}"[:250]
            argv = self._podman_argv(pod, container, env, mounts, work, run.container)
            self._running[pod.metadata.uid] = run
            return subprocess.run(argv, capture_output=True, text=True, env=podman_env())
        argv, penv = self._process_argv(container, env, mounts)
        self._running[pod.metadata.uid] = run
        return subprocess.run(argv, cwd=work / "cwd", env=penv, capture_output=True, text=True)

    def _run_pod(self, pod) -> None:
        ns, name = pod.metadata.namespace, pod.metadata.name
        job = (pod.metadata.labels or {}).get("job-name")
        container = pod.spec.containers[0]
        run = PodRun(ns, name, job, list(container.command or []) + list(container.args or []), started=time.time())
        self.runs.append(run)
        prefix = next((p for p in self.fail_first if job and job.startswith(p)), None)
        if prefix is not None:
            self.fail_first.discard(prefix)
            run.exit_code = 137
            self._status(pod, "Failed", 137, "NodeLost")
            return
        work = Path(tempfile.mkdtemp(prefix=f"pod-{name}-"))
        try:
            self._status(pod, "Running")
            proc = self._launch(pod, run, work)
            run.exit_code, run.output = proc.returncode, proc.stdout + proc.stderr
        except Exception as exc:  # a pod that cannot start fails like one whose command fails
            run.exit_code, run.output = 1, f"node agent: {exc}"
        finally:
            self._running.pop(pod.metadata.uid, None)
            shutil.rmtree(work, ignore_errors=True)
        self._status(pod, "Succeeded" if run.exit_code == 0 else "Failed", run.exit_code)
