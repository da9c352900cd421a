"""What ``ctune run`` shows while steps run: a line per finished step, the running steps'
progress (read from their ``progress.json``, ``jobs.contract.progress``) as a live line on
a terminal or a periodic line in a log, and the report page rewritten as steps finish.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from controller.run.backends.base import Event
from jobs.contract.progress import read_progress
from jobs.contract.steps import StepSpec
from jobs.storage import Store, env_seconds

STATUS_ENV = "CTUNE_STATUS_S"
PAGE_ENV = "CTUNE_REPORT_EVERY_S"


class LiveStatus:
    """Every ``interval`` seconds, each running process's current step and its progress:
    rewritten in place on a terminal (every 2 s), a plain line otherwise (every 60 s)."""

    def __init__(self, store: Store, stream: TextIO = sys.stderr, interval: float | None = None):
        self.store, self.stream = store, stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else env_seconds(STATUS_ENV, 2.0 if self.tty else 60.0)
        self.units: dict[str, tuple[list[StepSpec], float]] = {}
        self.lock = threading.Lock()
        self.shown = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="live-status", daemon=True)

    def __enter__(self) -> LiveStatus:
        if self.interval > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.clear()

    def on_event(self, e: Event) -> None:
        with self.lock:
            if e.kind == "start":
                self.units[e.step.id] = (list(e.unit or (e.step,)), time.time())
                return
            if e.kind == "waiting":  # not started: it stays in the live line as "starting"
                return
            for key, (steps, _) in list(self.units.items()):
                rest = [s for s in steps if s.id != e.step.id]
                if len(rest) != len(steps):  # the pack's next step starts now
                    self.units.pop(key)
                    if rest:
                        self.units[key] = (rest, time.time())

    def lines(self) -> list[str]:
        with self.lock:
            current = [(steps[0], started) for steps, started in self.units.values() if steps]
        out = []
        for step, started in current:
            record = read_progress(self.store, step.prefix)
            what = record.line() if record is not None and record.updated >= started - 1 else "starting"
            out.append(f"{step.kind} {step.label}: {what}")
        return out

    def say(self, line: str) -> None:
        """A line that stays (a finished step), printed above the live line."""
        with self.lock:
            self._clear_locked()
            print(line, file=self.stream, flush=True)

    def clear(self) -> None:
        with self.lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                lines = self.lines()
            except Exception:  # a store hiccup: the next tick tries again
                continue
            if not lines:
                continue
            with self.lock:
                if self.tty:
                    width = shutil.get_terminal_size((120, 20)).columns - 1
                    self.stream.write("\r\033[K" + " | ".join(lines)[:width])
                    self.shown = True
                else:
                    for line in lines:
                        print(f"  ~ {line}", file=self.stream)
                self.stream.flush()


class LivePage:
    """Rewrite the report page after a step finishes, at most once every ``interval`` seconds
    (``CTUNE_REPORT_EVERY_S``, default 30): a grid of thousands of cells is not re-read per cell."""

    def __init__(self, write: Callable[[], None], interval: float | None = None):
        self.write = write
        self.interval = env_seconds(PAGE_ENV, 30.0) if interval is None else interval
        self.last = 0.0

    def on_event(self, e: Event) -> None:
        if e.kind in ("done", "failed") and time.time() - self.last >= self.interval:
            self.now()

    def now(self) -> None:
        self.last = time.time()
        try:
            self.write()
        except Exception as exc:  # the page is a view: a failure to draw it must not stop the run
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"warning: could not write the report page: {why}", file=sys.stderr, flush=True)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """One line per finished step, with a running count (through ``show``, which keeps a
    live progress line below them on a terminal). ``total`` is None where the number of steps
    is not known up front (``ctune train`` chooses its steps as it goes; finished ones are skipped)."""

    def __init__(self, total: int | None = None, show=say):
        self.total = total
        self.finished = 0
        self.t0 = time.time()
        self.show = show

    def __call__(self, e: Event) -> None:
        if e.kind == "start":
            self.show(f"  ... {e.step.kind:<10} {e.step.label}" + (f" ({e.detail})" if e.detail else ""))
            return
        if e.kind == "waiting":
            self.show(f"  ~~~ waiting    {e.step.kind} {e.step.label} for {e.seconds:.0f}s: {e.detail}")
            return
        self.finished += 1
        mark = {"done": "ok", "failed": "FAILED", "blocked": "blocked"}[e.kind]
        elapsed = time.time() - self.t0
        how = f"{e.detail}; " if e.kind == "done" and e.detail else ""
        count = f"{self.finished}/{self.total}" if self.total else f"{self.finished}"
        self.show(f"[{count}] {mark:<7} {e.step.kind:<10} {e.step.label} "
                  f"({how}{e.seconds:.0f}s; {elapsed / 60:.1f} min elapsed)")
        if e.kind == "failed":
            for line in e.detail.splitlines():
                self.show(f"    | {line}")
