"""The embedded backend: each ready step as its own local process, at most ``jobs`` at once.

Each process runs the same entry point a container runs (``python -m jobs <kind> --step
<uri>``). Its output is kept in the store as the step's ``log.txt``. Children die with the controller
(``PR_SET_PDEATHSIG``), so a killed run leaves no orphan writing results.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from controller.backends.base import Event, OnEvent, RunResult, tail, write_step_files
from controller.plan import Plan
from jobs.contract.errors import BadInput
from jobs.contract.steps import LOG, StepSpec, done_steps, is_done, step_uri
from jobs.storage import Store

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
JOB_PACKAGES = ("torch", "transformers", "sib")


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def job_env(jobs: int = 1) -> dict[str, str]:
    """The environment of a job process: this package importable, CPU threads shared."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("CTUNE_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    env.setdefault("OMP_NUM_THREADS", env["CTUNE_THREADS"])
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return env


def check_job_packages() -> None:
    """Steps run here need the job packages (``pip install 'cluster-tune[jobs]'``)."""
    missing = [p for p in JOB_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise BadInput(f"running steps on this machine needs {', '.join(missing)}: "
                       "pip install 'cluster-tune[jobs]' (or use --backend kubernetes)")


@dataclass
class _Running:
    proc: subprocess.Popen
    log: Path
    started: float


class LocalBackend:
    def __init__(self, store: Store, jobs: int = 1, python: str = sys.executable, poll_s: float = 0.2):
        self.store = store
        self.jobs = max(1, jobs)
        self.python = python
        self.poll_s = poll_s

    def _launch(self, step: StepSpec, logdir: Path) -> _Running:
        log = logdir / f"{step.kind}-{step.id}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [self.python, "-m", "jobs", step.kind, "--step", step_uri(self.store.root, step.prefix)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=job_env(self.jobs), cwd=PACKAGE_ROOT, preexec_fn=_die_with_parent,
            )
        return _Running(proc, log, time.time())

    def _start_ready(self, plan: Plan, pending: list[str], done: set[str], running: dict[str, _Running],
                     result: RunResult, logdir: Path, on_event: OnEvent) -> None:
        for sid in list(pending):
            deps = plan.deps(sid)
            if any(result.gave_up(d) for d in deps):
                pending.remove(sid)
                result.blocked.append(sid)
                on_event(Event("blocked", plan.steps[sid]))
            elif len(running) < self.jobs and all(d in done for d in deps):
                pending.remove(sid)
                running[sid] = self._launch(plan.steps[sid], logdir)
                on_event(Event("start", plan.steps[sid]))

    def _collect_finished(self, plan: Plan, done: set[str], running: dict[str, _Running], result: RunResult,
                          on_event: OnEvent) -> None:
        for sid, r in list(running.items()):
            code = r.proc.poll()
            if code is None:
                continue
            del running[sid]
            step = plan.steps[sid]
            text = r.log.read_text(errors="replace")
            self.store.write_bytes(f"{step.prefix}/{LOG}", text.encode())
            seconds = time.time() - r.started
            if code == 0 and is_done(self.store, step.prefix):
                done.add(sid)
                result.ran.append(sid)
                on_event(Event("done", step, seconds))
            else:
                result.failed[sid] = tail(text)
                on_event(Event("failed", step, seconds, tail(text)))

    def run(self, plan: Plan, on_event: OnEvent = lambda e: None) -> RunResult:
        check_job_packages()
        result = RunResult()
        committed = done_steps(self.store)
        done = {sid for sid, s in plan.steps.items() if s.prefix in committed}
        result.already_done = len(done)
        pending = [sid for sid in plan.steps if sid not in done]
        write_step_files(self.store, (plan.steps[sid] for sid in pending))
        running: dict[str, _Running] = {}
        logdir = Path(tempfile.mkdtemp(prefix="ctune-logs-"))
        try:
            while pending or running:
                self._start_ready(plan, pending, done, running, result, logdir, on_event)
                self._collect_finished(plan, done, running, result, on_event)
                if running:
                    time.sleep(self.poll_s)
        finally:
            for r in running.values():
                r.proc.kill()
            shutil.rmtree(logdir, ignore_errors=True)
        return result

