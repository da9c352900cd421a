"""A real Kubernetes control plane for the integration tier: etcd, kube-apiserver and
kube-controller-manager v1.20.2 as local processes (see ../shared/docs/test-rig.md).

With ``scheduler=True`` a real kube-scheduler runs beside them, for the real node of
tests/kube_node.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.spawned import log_tail, spawn, stop_all

TARBALL_NAME = "kube-v1.20.2-r2-linux-amd64.tar.xz"
"""The r2 build: its API server survives a GET with ``?pretty=true`` (../shared/k8s/README.md)."""
BIN_CACHE = Path.home() / ".cache" / "ctune-kube-v1.20.2-r2"
ADMIN_TOKEN = "ctune-admin-token"
SA_TOKEN = "ctune-controller-token"
SA_NAMESPACE = "cluster-tune"
SA_NAME = "cluster-tune-controller"


class RigUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binaries(cache: Path) -> Path:
    """kube-apiserver and kube-controller-manager (and the scheduler and kubelet), unpacked from
    ../shared/k8s once, checked against its SHA256SUMS."""
    if (cache / "kube-apiserver").is_file() and (cache / "kube-controller-manager").is_file():
        return cache
    candidates = [Path(os.environ["CTUNE_KUBE_TARBALL"])] if os.environ.get("CTUNE_KUBE_TARBALL") else []
    here = Path(__file__).resolve().parents[1]
    candidates += [here.parent / "shared" / "k8s" / TARBALL_NAME, here / "shared" / "k8s" / TARBALL_NAME]
    tarball = next((c for c in candidates if c.is_file()), None)
    if tarball is None:  # rebuild from Debian's source package (minutes, once per machine)
        build = subprocess.run([str(here / "tests" / "build_kube.sh"), str(cache)], capture_output=True, text=True)
        if build.returncode != 0:
            raise RigUnavailable(f"no {TARBALL_NAME} (looked in {', '.join(map(str, candidates))}) and "
                                 f"rebuilding failed: {build.stderr.strip().splitlines()[-1:]}")
        return cache
    _check_digest(tarball)
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(cache, filter="data")
    return cache


def _check_digest(tarball: Path) -> None:
    sums = tarball.with_name("SHA256SUMS")
    if not sums.is_file():
        return
    expected = {name: digest for digest, name in (line.split() for line in sums.read_text().splitlines() if line.strip())}
    if tarball.name in expected:
        import hashlib

        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != expected[tarball.name]:
            raise RigUnavailable(f"{tarball}: sha256 {digest} is not the one SHA256SUMS lists")


@dataclass
class KubeRig:
    workdir: Path
    authorization: str = "RBAC"
    scheduler: bool = False
    procs: list[subprocess.Popen] = field(default_factory=list)
    server: str = ""

    def kubeconfig(self, token: str = ADMIN_TOKEN, namespace: str = "default") -> Path:
        path = self.workdir / f"kubeconfig-{token}-{namespace}"
        if path.is_file():  # written once: a process may be reading it (a rewrite would truncate it)
            return path
        scratch = path.with_suffix(".new")
        scratch.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "rig",
            "clusters": [{"name": "rig", "cluster": {"server": self.server, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "rig", "context": {"cluster": "rig", "user": "user", "namespace": namespace}}],
        }))
        scratch.rename(path)
        return path

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.procs.append(spawn(self.workdir, name, argv))

    def start(self, bin_cache: Path) -> KubeRig:
        if shutil.which("etcd") is None:
            raise RigUnavailable("etcd is not installed (apt-get install etcd-server)")
        bins = find_binaries(bin_cache)
        self.workdir.mkdir(parents=True, exist_ok=True)
        key = self.workdir / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        (self.workdir / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},admin,admin,"system:masters"\n'
            f'{SA_TOKEN},system:serviceaccount:{SA_NAMESPACE}:{SA_NAME},sa-uid,'
            f'"system:serviceaccounts,system:serviceaccounts:{SA_NAMESPACE},system:authenticated"\n')
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self._spawn("etcd", ["etcd", "--data-dir", str(self.workdir / "etcd"),
                             "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                             "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"])
        self._spawn("kube-apiserver", [
            str(bins / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={api_port}", "--insecure-port=0",
            f"--cert-dir={self.workdir / 'certs'}", f"--token-auth-file={self.workdir / 'tokens.csv'}",
            f"--authorization-mode={self.authorization}",
            f"--service-account-key-file={key}", f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--feature-gates=TTLAfterFinished=true",
            "--service-cluster-ip-range=10.96.0.0/24", "--advertise-address=127.0.0.1"])
        self.server = f"https://127.0.0.1:{api_port}"
        self._wait_ready()
        # nodelifecycle lifts a new node's not-ready taint; the service-account controllers give
        # each namespace its default account and each account a token a kubelet mounts
        self._spawn("kube-controller-manager", [
            str(bins / "kube-controller-manager"), f"--kubeconfig={self.kubeconfig()}",
            "--controllers=job,cronjob,garbagecollector,ttl-after-finished,namespace,nodelifecycle,"
            "serviceaccount,serviceaccount-token", f"--service-account-private-key-file={key}",
            f"--root-ca-file={self.ca_file()}", "--leader-elect=false",
            "--port=0", "--secure-port=0", "--feature-gates=TTLAfterFinished=true"])
        if self.scheduler:
            self._spawn("kube-scheduler", [str(bins / "kube-scheduler"), f"--kubeconfig={self.kubeconfig()}",
                                           "--leader-elect=false", "--port=0", "--secure-port=0"])
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        import ssl
        import urllib.request

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.time() + timeout
        while time.time() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RigUnavailable(f"{p.args[0]} exited: " + self.log_tail(Path(p.args[0]).name))
            try:
                req = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
                if urllib.request.urlopen(req, context=ctx, timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RigUnavailable("kube-apiserver was not ready in time: " + self.log_tail("kube-apiserver"))

    def ca_file(self) -> Path:
        """The API server's self-signed serving certificate (what a Pod trusts in-cluster)."""
        return next((self.workdir / "certs").glob("*.crt"))

    def log_tail(self, name: str, lines: int = 10) -> str:
        return log_tail(self.workdir, name, lines)

    def stop(self) -> None:
        stop_all(self.procs, timeout_s=10)
