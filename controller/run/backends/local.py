"""The embedded backend: each ready step as its own local process, at most ``jobs`` at once.

Each process runs the same entry point a container runs (``python -m jobs <kind> --step
<uri> [--step ...]``, a pack of cells in one process). Each step keeps its own output in the
store as its ``log.txt``. Each job runs in a process group of its own, stopped whole (its
worker pools too) when the run ends, is interrupted or terminated; if the controller is
killed, each job gets SIGTERM (``PR_SET_PDEATHSIG``) and stops its group, so a killed run
leaves no orphan writing results.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from controller.plan.graph import Plan
from controller.plan.packing import JobUnit, pack_units
from controller.run.backends.base import Event, OnEvent, RunResult, start_event, tail, write_step_files
from controller.run.scheduler import schedule
from jobs.contract import claims
from jobs.contract.errors import EXIT_CLAIMED, BadInput, StepsFailed
from jobs.contract.kinds import step_kind
from jobs.contract.steps import LOG, StepSpec, done_steps, is_done, step_uri
from jobs.storage import Store

PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
JOB_PACKAGES = ("torch", "transformers")


def _job_preexec() -> None:  # runs in the child before exec
    # a process group of its own: the job and whatever it starts (sIB's worker pool) are
    # stopped together; and a SIGTERM when the controller dies, on which the job stops its group
    os.setpgid(0, 0)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


RUN_DIR_PREFIX = "ctune-run-"


def run_dir() -> Path:
    """This run's temporary folder (the jobs' logs and their TMPDIR), after removing those
    of runs on this machine whose controller is gone (killed: it could not remove its own)."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{RUN_DIR_PREFIX}*"):
        pid = old.name[len(RUN_DIR_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))


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


def step_packages(step: StepSpec) -> tuple[str, ...]:
    """What a step imports beyond torch and transformers: sIB for an sIB clustering, SetFit for
    its cells. Only steps still to run count, so a machine given the clusterings computed
    elsewhere (a lent GPU machine: bench/device_grid.sh) needs no sIB."""
    return step_kind(step.kind).packages(step.params)


def check_job_packages(todo: Iterable[StepSpec]) -> None:
    """The steps to run here need the job packages (``pip install 'cluster-tune[jobs]'``)."""
    needed = dict.fromkeys([*JOB_PACKAGES, *(p for step in todo for p in step_packages(step))])
    missing = [p for p in needed if importlib.util.find_spec(p) is None]
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


def _read_from_outside(todo: list[StepSpec], plan: Plan, committed: set[str]) -> set[str]:
    """Ids of the steps outside the plan that its steps read: each must be committed already
    (nothing here would ever run it, and waiting for it would never end)."""
    outside = {d for s in todo for d in s.deps() if d not in plan.steps}
    have = {p.rsplit("/", 1)[1] for p in committed}
    missing = sorted(outside - have)
    if missing:
        raise StepsFailed(f"a step of this run reads step {missing[0]}, which is neither in the run nor done")
    return outside


class LocalBackend:
    """``pack``: cells per process (see ``controller.plan.packing``); ``jobs``: processes at once."""

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
        env = job_env(self.jobs)
        env["TMPDIR"] = str(logdir / "tmp")  # scratch folders go with the run's folder
        (logdir / "tmp").mkdir(exist_ok=True)
        argv = [self.python, "-m", "jobs", unit.kind]
        for step in unit.steps:
            argv += ["--step", step_uri(self.store.root, step.prefix)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=PACKAGE_ROOT, preexec_fn=_job_preexec)
        return _Running(unit, proc, log, time.time())

    def _start_ready(self, pending: list[JobUnit], done: set[str], running: dict[str, _Running],
                     result: RunResult, logdir: Path, on_event: OnEvent) -> None:
        now = schedule(pending, done, set(running), {*result.failed, *result.blocked}, self.jobs - len(running))
        for unit in now.blocked:
            pending.remove(unit)
            for step in unit.steps:
                result.blocked.append(step.id)
                on_event(Event("blocked", step))
        for unit in now.start:
            pending.remove(unit)
            write_step_files(self.store, unit.steps)  # written when needed: a grid has thousands
            running[unit.name] = self._launch(unit, logdir)
            on_event(start_event(unit))

    def _failure(self, step: StepSpec, output: str, code: int) -> str:
        """The step's own log (a pack's process runs several), else the process's output; and
        how the process ended."""
        ended = (f"the job process was killed by {signal.Signals(-code).name}" if code < 0
                 else f"the job process exited with code {code}")
        if self.store.exists(f"{step.prefix}/{LOG}"):
            return tail(self.store.read_bytes(f"{step.prefix}/{LOG}").decode(errors="replace")) + f"\n({ended})"
        self.store.write_bytes(f"{step.prefix}/{LOG}", output.encode())
        return tail(output) + f"\n({ended})"

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
            _stop_group(r.proc)  # what the job started and left (a killed job's worker pool)
            del running[name]
            output = r.log.read_text(errors="replace")
            for step in r.unit.steps:
                if step.id not in done and (code == EXIT_CLAIMED or _held_elsewhere(self.store, step)):
                    waiting[step.id] = step  # another controller's process may compute it: see later
                elif step.id not in done:
                    result.failed[step.id] = self._failure(step, output, code)
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
        result = RunResult()
        committed = done_steps(self.store)
        done = {sid for sid, s in plan.steps.items() if s.prefix in committed}
        result.already_done = len(done)
        todo = [s for sid, s in plan.steps.items() if sid not in done]
        done |= _read_from_outside(todo, plan, committed)
        check_job_packages(todo)
        pending = pack_units(todo, self.pack)
        running: dict[str, _Running] = {}
        waiting: dict[str, StepSpec] = {}
        logdir = run_dir()
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
                _stop_group(r.proc)
            shutil.rmtree(logdir, ignore_errors=True)
        return result
