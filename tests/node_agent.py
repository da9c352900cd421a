"""A stand-in for a node (scheduler + kubelet) for the integration tier.

Watches Pods and runs each one's container command as a local process with only what a
real node gives a container: the Pod's env (secretKeyRef values read from the Secret), an
empty working directory, and emptyDir volumes (their mount paths in the command and env
point to a fresh folder). The "image" is this machine's installed project: its Python is
first on PATH. The Pod's status is patched Running, then Succeeded or Failed with the exit
code, which drives the real Job controller. Output is kept per Pod (``logs``).
"""

from __future__ import annotations

import base64
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


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodRun:
    namespace: str
    name: str
    job: str | None
    command: list[str]
    exit_code: int | None = None
    output: str = ""


@dataclass
class NodeAgent:
    kubeconfig: str
    fail_first: set[str] = field(default_factory=set)
    """Job-name prefixes whose first Pod is failed (exit 137, as if the node died) without running."""
    runs: list[PodRun] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _seen: set[str] = field(default_factory=set)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> NodeAgent:
        from kubernetes import client, config

        self.api = client.CoreV1Api(config.new_client_from_config(self.kubeconfig))
        t = threading.Thread(target=self._loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.api.list_pod_for_all_namespaces().items
            except Exception:  # the API server may be restarting; keep polling
                time.sleep(0.5)
                continue
            for pod in pods:
                uid = pod.metadata.uid
                if uid in self._seen or pod.status.phase != "Pending" or pod.metadata.deletion_timestamp:
                    continue
                self._seen.add(uid)
                t = threading.Thread(target=self._run_pod, args=(pod,), daemon=True)
                t.start()
                self._threads.append(t)
            time.sleep(0.3)

    def _env(self, namespace: str, container) -> dict[str, str]:
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin"}
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

    def _run_pod(self, pod) -> None:
        ns, name = pod.metadata.namespace, pod.metadata.name
        job = (pod.metadata.labels or {}).get("job-name")
        container = pod.spec.containers[0]
        argv = list(container.command or []) + list(container.args or [])
        run = PodRun(ns, name, job, argv)
        self.runs.append(run)
        prefix = next((p for p in self.fail_first if job and job.startswith(p)), None)
        if prefix is not None:
            self.fail_first.discard(prefix)
            run.exit_code = 137
            self._status(pod, "Failed", 137, "NodeLost")
            return
        work = Path(tempfile.mkdtemp(prefix=f"pod-{name}-"))
        try:
            env = self._env(ns, container)
            mounts = {m.mount_path: str(work / "volumes" / m.name) for m in container.volume_mounts or []}
            for local in mounts.values():
                Path(local).mkdir(parents=True, exist_ok=True)

            def remap(s: str) -> str:
                for path, local in mounts.items():
                    s = s.replace(path, local)
                return s

            argv = [remap(a) for a in argv]
            env = {k: remap(v) for k, v in env.items()}
            (work / "cwd").mkdir()
            self._status(pod, "Running")
            proc = subprocess.run(argv, cwd=work / "cwd", env=env, capture_output=True, text=True)
            run.exit_code, run.output = proc.returncode, proc.stdout + proc.stderr
        except Exception as exc:  # a pod that cannot start fails like one whose command fails
            run.exit_code, run.output = 1, f"node agent: {exc}"
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._status(pod, "Succeeded" if run.exit_code == 0 else "Failed", run.exit_code)
