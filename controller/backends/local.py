"""The embedded backend: each ready step as its own local process, at most ``jobs`` at once.

Each process runs the same entry point a container runs (``python -m jobs <kind> --step
<uri> [--step ...]``, a pack of cells in one process). Each step keeps its own output in the
store as its ``log.txt``. Children die with the controller
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

from controller.backends.base import Event, OnEvent, RunResult, start_event, tail, write_step_files
from controller.packing import JobUnit, pack_units
from controller.plan import Plan
from jobs.contract import claims
from jobs.contract.errors import EXIT_CLAIMED, BadInput
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
    env["CTUNE_LOG_TO_STORE"] = "1"  # each step of a pack keeps its own log
    return env


def check_job_packages() -> None:
    """Steps run here need the job packages (``pip install 'cluster-tune[jobs]'``)."""
    missing = [p for p in JOB_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise BadInput(f"running steps on this machine needs {', '.join(missing)}: "
                       "pip install 'cluster-tune[jobs]' (or use --backend kubernetes)")


@dataclass
class _Running:
    unit: JobUnit
    proc: subprocess.Popen
    log: Path
    started: float


def _held_elsewhere(store: Store, step: StepSpec) -> bool:
    held = claims.current(store, step.prefix)
    return held is not None and held.live()


def unit_deps(unit: JobUnit) -> set[str]:
    """The steps a unit reads that it does not run itself."""
    return {d for s in unit.steps for d in s.deps()} - {s.id for s in unit.steps}


class LocalBackend:
    """``pack``: cells per process (see ``controller.packing``); ``jobs``: processes at once."""

    def __init__(self, store: Store, jobs: int = 1, pack: int = 1, python: str = sys.executable,
                 poll_s: float = 0.2):
        self.store = store
        self.jobs = max(1, jobs)
        self.pack = max(1, pack)
        self.python = python
        self.poll_s = poll_s
        self.wait_poll_s = max(poll_s, 1.0)

    def _launch(self, unit: JobUnit, logdir: Path) -> _Running:
        log = logdir / f"{unit.name}.log"
        argv = [self.python, "-m", "jobs", unit.kind]
        for step in unit.steps:
            argv += ["--step", step_uri(self.store.root, step.prefix)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=job_env(self.jobs), cwd=PACKAGE_ROOT,
                                    preexec_fn=_die_with_parent)
        return _Running(unit, proc, log, time.time())

    def _start_ready(self, pending: list[JobUnit], done: set[str], running: dict[str, _Running],
                     result: RunResult, logdir: Path, on_event: OnEvent) -> None:
        for unit in list(pending):
            deps = unit_deps(unit)
            if any(result.gave_up(d) for d in deps):
                pending.remove(unit)
                for step in unit.steps:
                    result.blocked.append(step.id)
                    on_event(Event("blocked", step))
            elif len(running) < self.jobs and deps <= done:
                pending.remove(unit)
                write_step_files(self.store, unit.steps)  # written when needed: a grid has thousands
                running[unit.name] = self._launch(unit, logdir)
                on_event(start_event(unit))

    def _failure(self, step: StepSpec, output: str) -> str:
        """The step's own log (a pack's process runs several), else the process's output."""
        if self.store.exists(f"{step.prefix}/{LOG}"):
            return tail(self.store.read_bytes(f"{step.prefix}/{LOG}").decode(errors="replace"))
        self.store.write_bytes(f"{step.prefix}/{LOG}", output.encode())
        return tail(output)

    def _collect(self, done: set[str], running: dict[str, _Running], waiting: dict[str, StepSpec],
                 result: RunResult, on_event: OnEvent) -> None:
        for name, r in list(running.items()):
            code = r.proc.poll()
            for step in r.unit.steps:  # a pack commits its cells one by one
                if step.id not in done and is_done(self.store, step.prefix):
                    done.add(step.id)
                    result.ran.append(step.id)
                    on_event(Event("done", step, time.time() - r.started))
            if code is None:
                continue
            del running[name]
            output = r.log.read_text(errors="replace")
            for step in r.unit.steps:
                if step.id not in done and (code == EXIT_CLAIMED or _held_elsewhere(self.store, step)):
                    waiting[step.id] = step  # another controller's process may compute it: see later
                elif step.id not in done:
                    result.failed[step.id] = self._failure(step, output)
                    on_event(Event("failed", step, time.time() - r.started, result.failed[step.id]))

    def _recheck_waiting(self, waiting: dict[str, StepSpec], pending: list[JobUnit], done: set[str],
                         result: RunResult, on_event: OnEvent) -> None:
        """Steps claimed by another process: done there, or to run here once its claim lapsed."""
        for sid, step in list(waiting.items()):
            if is_done(self.store, step.prefix):
                del waiting[sid]
                done.add(sid)
                result.elsewhere.append(sid)
                on_event(Event("done", step, detail="by another process"))
            elif not _held_elsewhere(self.store, step):
                del waiting[sid]
                pending.insert(0, JobUnit((step,)))

    def run(self, plan: Plan, on_event: OnEvent = lambda e: None) -> RunResult:
        check_job_packages()
        result = RunResult()
        committed = done_steps(self.store)
        done = {sid for sid, s in plan.steps.items() if s.prefix in committed}
        result.already_done = len(done)
        todo = [s for sid, s in plan.steps.items() if sid not in done]
        pending = pack_units(todo, self.pack)
        running: dict[str, _Running] = {}
        waiting: dict[str, StepSpec] = {}
        logdir = Path(tempfile.mkdtemp(prefix="ctune-logs-"))
        rechecked = 0.0
        try:
            while pending or running or waiting:
                self._start_ready(pending, done, running, result, logdir, on_event)
                self._collect(done, running, waiting, result, on_event)
                if waiting and time.time() - rechecked > self.wait_poll_s:
                    self._recheck_waiting(waiting, pending, done, result, on_event)
                    rechecked = time.time()
                if running or waiting:
                    time.sleep(self.poll_s)
        finally:
            for r in running.values():
                r.proc.kill()
            shutil.rmtree(logdir, ignore_errors=True)
        return result
