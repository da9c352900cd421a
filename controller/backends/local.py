"""The embedded backend: each ready step as its own local process, at most ``jobs`` at once.

Each process runs the same entry point a container runs (``python -m jobs <kind> --step
<uri>``).  Its log is kept in the store beside the step.  Children die with the
controller (``PR_SET_PDEATHSIG``), so a killed run leaves no orphan writing results.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from controller.plan import Plan
from jobs.step import STEP_FILE, StepSpec, is_done
from jobs.storage import Store

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Event:
    """A change the progress display shows."""

    kind: str  # "start", "done", "failed", "blocked"
    step: StepSpec
    seconds: float = 0.0
    detail: str = ""


@dataclass
class RunResult:
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    already_done: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


@dataclass
class _Running:
    proc: subprocess.Popen
    log: Path
    started: float


def write_step_files(store: Store, plan: Plan, pending: list[str]) -> None:
    for sid in pending:
        step = plan.steps[sid]
        store.write_bytes(f"{step.prefix}/{STEP_FILE}", step.to_json().encode())


def step_uri(store: Store, step: StepSpec) -> str:
    return f"{store.root.rstrip('/')}/{step.prefix}/{STEP_FILE}"


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class LocalBackend:
    def __init__(self, store: Store, jobs: int = 1, python: str = sys.executable, poll_s: float = 0.2):
        self.store = store
        self.jobs = max(1, jobs)
        self.python = python
        self.poll_s = poll_s

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        threads = str(max(1, (os.cpu_count() or 1) // self.jobs))
        env.setdefault("CTUNE_THREADS", threads)
        env.setdefault("OMP_NUM_THREADS", env["CTUNE_THREADS"])
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        return env

    def _launch(self, step: StepSpec, logdir: Path) -> _Running:
        log = logdir / f"{step.kind}-{step.id}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [self.python, "-m", "jobs", step.kind, "--step", step_uri(self.store, step)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self._env(), cwd=PACKAGE_ROOT, preexec_fn=_die_with_parent,
            )
        return _Running(proc, log, time.time())

    def run(self, plan: Plan, on_event: Callable[[Event], None] = lambda e: None) -> RunResult:
        result = RunResult()
        done = {sid for sid in plan.steps if is_done(self.store, plan.steps[sid].prefix)}
        result.already_done = len(done)
        pending = [sid for sid in plan.steps if sid not in done]
        write_step_files(self.store, plan, pending)
        running: dict[str, _Running] = {}
        logdir = Path(tempfile.mkdtemp(prefix="ctune-logs-"))
        try:
            while pending or running:
                for sid in list(pending):
                    deps = plan.deps(sid)
                    if any(d in result.failed or d in result.blocked for d in deps):
                        pending.remove(sid)
                        result.blocked.append(sid)
                        on_event(Event("blocked", plan.steps[sid]))
                    elif len(running) < self.jobs and all(d in done for d in deps):
                        pending.remove(sid)
                        running[sid] = self._launch(plan.steps[sid], logdir)
                        on_event(Event("start", plan.steps[sid]))
                for sid, r in list(running.items()):
                    code = r.proc.poll()
                    if code is None:
                        continue
                    del running[sid]
                    step = plan.steps[sid]
                    text = r.log.read_text(errors="replace")
                    self.store.write_bytes(f"{step.prefix}/log.txt", text.encode())
                    seconds = time.time() - r.started
                    if code == 0 and is_done(self.store, step.prefix):
                        done.add(sid)
                        result.ran.append(sid)
                        on_event(Event("done", step, seconds))
                    else:
                        result.failed[sid] = tail(text)
                        on_event(Event("failed", step, seconds, tail(text)))
                if running:
                    time.sleep(self.poll_s)
        finally:
            for r in running.values():
                r.proc.kill()
        return result
