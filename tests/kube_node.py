"""A real node for the Kubernetes tier: containerd and a kubelet v1.20.2 on this machine, with
the job and controller images imported from podman (see ../shared/docs/test-rig.md).

- **Addresses**: the node is named ``127.0.0.1``, so its only address is loopback. The kubelet
  refuses a loopback ``--node-ip``, but takes a node name that is an IP address as its address;
  it listens on 127.0.0.1 only, and so do containerd's streaming server and every port of the
  rig. Pods use the host's network (``kubernetes.host_network``): the S3 server and the API
  server listen on loopback, and there is no kube-proxy.
- **GPUs**: the node's status advertises ``nvidia.com/gpu: 2`` (patched, as a device plugin
  would report it) and carries a GPU label, so the real scheduler places GPU pods against a
  fixed capacity. It has no taint: it is also the cluster's only CPU node. Nothing uses a GPU:
  the job image is the CPU build.
- **Images**: containerd's content store lives in a cache folder kept between runs; an image
  is imported again only when podman's image id changed (the import takes about a minute).
- One kubelet per machine: it uses fixed paths (``/var/lib/kubelet/device-plugins``,
  ``/var/log/pods``) and port 10250.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.spawned import log_tail, spawn, stop_all

REPO = Path(__file__).resolve().parents[1]
NODE_NAME = "127.0.0.1"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_CAPACITY = 2
GPU_LABEL = ("cluster-tune.io/gpu", "true")
PAUSE_IMAGE = "localhost/pause:exp"
CACHE = Path.home() / ".cache" / "ctune-node"
KUBELET_PORT = 10250


class NodeUnavailable(RuntimeError):
    pass


def pause_tarball() -> Path:
    for candidate in (REPO.parent / "shared" / "k8s" / "node" / "pause-image.tar",
                      REPO / "shared" / "k8s" / "node" / "pause-image.tar"):
        if candidate.is_file():
            return candidate
    raise NodeUnavailable("no pause image (../shared/k8s/node/pause-image.tar)")


def _containerd_config(state: Path, root: Path, cni_conf: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root}"
state = "{state}/state"
[grpc]
  address = "{state}/containerd.sock"
[ttrpc]
  address = "{state}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # this machine lacks CAP_SYS_RESOURCE: without it every pod fails in runc create
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
"""


@dataclass
class RealNode:
    workdir: Path
    """Logs and the kubelet's folders (the test's folder)."""
    tools: Path
    """Where containerd's binaries are (``.venv/kube-tools/usr/bin``)."""
    kubelet_bin: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    state: Path = Path()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.tools}{os.pathsep}{os.environ.get('PATH', '')}"}

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        proc = spawn(self.workdir, name, argv, self._env())
        self.procs.append(proc)
        return proc

    def ctr(self, *argv: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.tools / "ctr"), "-a", str(self.socket), "-n", "k8s.io", *argv],
                              capture_output=True, text=True, timeout=timeout, env=self._env(), **kw)

    def start_containerd(self) -> None:
        if not (self.tools / "containerd").is_file():
            raise NodeUnavailable(f"no containerd in {self.tools} (make kube-tools)")
        # a short folder: the socket's path must fit in 108 bytes
        self.state = Path(tempfile.mkdtemp(prefix="ctune-node-", dir="/run" if os.access("/run", os.W_OK) else None))
        cni = self.workdir / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-loopback.conf").write_text('{"cniVersion": "0.4.0", "name": "lo", "type": "loopback"}\n')
        config = self.workdir / "containerd.toml"
        CACHE.mkdir(parents=True, exist_ok=True)
        config.write_text(_containerd_config(self.state, CACHE / "containerd", cni))
        t0 = time.time()
        self._spawn("containerd", [str(self.tools / "containerd"), "--config", str(config)])
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.procs[-1].poll() is not None:
                raise NodeUnavailable("containerd exited: " + self.log_tail("containerd"))
            if self.socket.exists() and self.ctr("version", timeout=10).returncode == 0:
                self.timings["containerd_s"] = time.time() - t0
                return
            time.sleep(0.2)
        raise NodeUnavailable("containerd did not answer in 30 s: " + self.log_tail("containerd"))

    def import_image(self, tarball: Path | None, image: str, podman_id: str = "", name_as: str = "") -> float:
        """Import a docker-archive into containerd (skipped when the stamp says this podman
        image id is there already); tag it also as ``name_as`` (how a Pod names it). Seconds taken."""
        stamp = CACHE / "imported" / image.replace("/", "_").replace(":", "_")
        if podman_id and stamp.is_file() and stamp.read_text() == podman_id and self._has(name_as or image):
            return 0.0
        t0 = time.time()
        for ref in {image, name_as} - {""}:  # the old content goes with its last name
            self.ctr("images", "rm", ref)
        if tarball is None:  # straight from podman's store, through a pipe
            save = subprocess.Popen(["podman", "save", "--format", "docker-archive", image], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=_podman_env())
            done = self.ctr("images", "import", "-", stdin=save.stdout)
            save.wait()
            if save.returncode != 0:
                raise NodeUnavailable(f"podman save {image} failed: {save.stderr.read().decode()[-300:]}")
        else:
            done = self.ctr("images", "import", str(tarball))
        if done.returncode != 0:
            raise NodeUnavailable(f"importing {image} into containerd failed: {done.stderr.strip()[-300:]}")
        if name_as and name_as != image:
            tagged = self.ctr("images", "tag", image, name_as)
            if tagged.returncode != 0:
                raise NodeUnavailable(f"ctr images tag {image} {name_as}: {tagged.stderr.strip()[-300:]}")
        if podman_id:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(podman_id)
        return time.time() - t0

    def _has(self, ref: str) -> bool:
        return ref in self.ctr("images", "ls", "-q").stdout.split()

    def start_kubelet(self, kubeconfig: Path) -> None:
        for fixed in ("/var/lib/kubelet/device-plugins", "/var/log/pods", "/var/log/containers"):
            Path(fixed).mkdir(parents=True, exist_ok=True)
        root = self.workdir / "kubelet"
        for sub in ("root", "certs", "volume-plugins", "seccomp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        sock = f"unix://{self.socket}"
        self._spawn("kubelet", [
            str(self.kubelet_bin), f"--kubeconfig={kubeconfig}", f"--hostname-override={NODE_NAME}",
            "--address=127.0.0.1", f"--port={KUBELET_PORT}", "--healthz-port=0", "--read-only-port=0",
            "--container-runtime=remote", f"--container-runtime-endpoint={sock}", f"--image-service-endpoint={sock}",
            "--fail-swap-on=false", "--cgroups-per-qos=false", "--enforce-node-allocatable=",
            "--cgroup-driver=cgroupfs", "--oom-score-adj=0", f"--root-dir={root / 'root'}",
            f"--cert-dir={root / 'certs'}", f"--volume-plugin-dir={root / 'volume-plugins'}",
            f"--seccomp-profile-root={root / 'seccomp'}", "--make-iptables-util-chains=false",
            f"--pod-infra-container-image={PAUSE_IMAGE}", "--node-status-update-frequency=1s",
            f"--node-labels={GPU_LABEL[0]}={GPU_LABEL[1]}", "--image-gc-high-threshold=100",
            "--eviction-hard=", "--serialize-image-pulls=false", "--v=1"])

    def log_tail(self, name: str, lines: int = 10) -> str:
        return log_tail(self.workdir, name, lines)

    def stop(self) -> None:
        stop_all(self.procs, timeout_s=15)
        # the kubelet bind-mounts its root onto itself, and pods' volumes under it
        root = self.workdir / "kubelet" / "root"
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(root)) or line.split()[1].startswith(str(self.state))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.state, ignore_errors=True)


def _podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "images/containers.conf"))}


def podman_image_id(image: str) -> str:
    done = subprocess.run(["podman", "image", "inspect", image, "--format", "{{.Id}}"], capture_output=True,
                          text=True, env=_podman_env())
    return done.stdout.strip() if done.returncode == 0 else ""


def pod_image_name(image: str) -> str:
    """How containerd's CRI names an image a Pod gives without a registry (``docker.io/library/``)."""
    first = image.split("/")[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"


def start_node(rig, workdir: Path, tools: Path, kubelet: Path, images: list[str], timeout_s: float = 120) -> RealNode:
    """containerd with the images, then the kubelet, registered Ready with its GPUs."""
    from kubernetes import client, config

    workdir.mkdir(parents=True, exist_ok=True)
    node = RealNode(workdir, tools, kubelet)
    try:
        node.start_containerd()
        node.import_image(pause_tarball(), PAUSE_IMAGE)
        for image in images:
            podman_id = podman_image_id(f"localhost/{image}")
            if not podman_id:
                raise NodeUnavailable(f"podman has no image {image} (make images-local VERSION=test)")
            node.timings[f"import {image}_s"] = node.import_image(None, f"localhost/{image}", podman_id,
                                                                  pod_image_name(image))
        t0 = time.time()
        node.start_kubelet(rig.kubeconfig())
        core = client.CoreV1Api(config.new_client_from_config(str(rig.kubeconfig())))
        _wait_ready(node, core, timeout_s)
        gpus = {GPU_RESOURCE: str(GPU_CAPACITY)}
        core.patch_node_status(NODE_NAME, {"status": {"capacity": gpus, "allocatable": gpus}})
        node.timings["kubelet_s"] = time.time() - t0
    except Exception:
        node.stop()
        raise
    return node


def _wait_ready(node: RealNode, core, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if any(p.poll() is not None for p in node.procs):
            raise NodeUnavailable("the kubelet or containerd exited: " + node.log_tail("kubelet"))
        try:
            found = core.read_node(NODE_NAME)
            ready = [c.status for c in found.status.conditions or [] if c.type == "Ready"]
            taints = [t.key for t in found.spec.taints or []]
            if ready == ["True"] and not taints:  # nodelifecycle lifted the not-ready taint
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise NodeUnavailable(f"node {NODE_NAME} not Ready in {timeout_s:.0f} s: " + node.log_tail("kubelet"))


def kill_container(node: RealNode, container_id: str) -> None:
    """SIGKILL a Pod's container through containerd, as the OOM killer or a dying node would."""
    done = node.ctr("tasks", "kill", "-s", "SIGKILL", container_id.removeprefix("containerd://"), timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ctr tasks kill: {done.stderr.strip()}")


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """The (address, port) pairs the processes listen on over TCP, from /proc."""
    import ipaddress

    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # the kernel writes each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            out.add((str(ipaddress.ip_address(packed)), int(hex_port, 16)))
    return out
