"""Long-running helper processes of a test rig: each logs to ``<workdir>/<name>.log``; stopped
newest first, SIGTERM then SIGKILL."""

from __future__ import annotations

import subprocess
from pathlib import Path


def spawn(workdir: Path, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def log_tail(workdir: Path, name: str, lines: int = 10) -> str:
    path = workdir / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def stop_all(procs: list[subprocess.Popen], timeout_s: float) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    procs.clear()
