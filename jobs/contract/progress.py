"""A running step's progress, as the step writes it and the controller reads it.

A step's loops call a ``StepProgress`` with (done, total); it keeps the figures cheap to
produce (the loss is fetched from the device only when a line is due: no host sync per
optimizer step) and, throttled, both logs a line (``what: 120/640 batches (19%), 3.2
batches/s, ETA 2m41s, loss 1.234``) and writes ``progress.json`` beside the step, which
``ctune run``'s live line, ``ctune status`` and the report page read. The file is advisory:
it is never an output, and a step is done only by its ``_SUCCESS``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from jobs.storage import Store, env_seconds

PROGRESS = "progress.json"
LOG_EVERY_ENV = "CTUNE_PROGRESS_S"
DEFAULT_LOG_EVERY_S = 30.0
WRITE_EVERY_S = 10.0

log = logging.getLogger("progress")


@dataclass(frozen=True)
class ProgressRecord:
    phase: str
    """What the step is doing: ``training``, ``evaluating``, ``clustering``, ..."""
    done: int
    total: int
    unit: str
    rate: float
    """Units per second since the phase began."""
    eta_s: float | None
    loss: float | None
    updated: float
    started: float = 0.0
    """When the phase began."""

    def line(self, now: float | None = None) -> str:
        """``phase: done/total unit (share), rate, ETA, loss``; a phase that counts nothing
        (loading, clustering) says how long it has been going."""
        if not self.done and not self.total:
            return f"{self.phase} ({format_duration((time.time() if now is None else now) - self.started)} so far)"
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = "" if self.eta_s is None else f", ETA {format_duration(self.eta_s)}"
        loss = "" if self.loss is None else f", loss {self.loss:.3f}"
        of = f"/{self.total}" if self.total else ""
        return f"{self.phase}: {self.done}{of} {self.unit}{share}, {self.rate:.3g} {self.unit}/s{eta}{loss}"

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True) + "\n").encode()

    @staticmethod
    def from_bytes(data: bytes) -> ProgressRecord | None:
        try:
            raw = json.loads(data)
            return ProgressRecord(str(raw["phase"]), int(raw["done"]), int(raw["total"]), str(raw["unit"]),
                                  float(raw["rate"]), None if raw.get("eta_s") is None else float(raw["eta_s"]),
                                  None if raw.get("loss") is None else float(raw["loss"]), float(raw["updated"]),
                                  float(raw.get("started", raw["updated"])))
        except (ValueError, KeyError, TypeError):
            return None


def format_duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


def log_every_s() -> float:
    return env_seconds(LOG_EVERY_ENV, DEFAULT_LOG_EVERY_S)


class StepProgress:
    """Throttled progress of one phase of a step; ``store``/``prefix`` None: log lines only."""

    def __init__(self, phase: str, unit: str, store: Store | None = None, prefix: str | None = None,
                 clock: Callable[[], float] = time.time):
        self.phase, self.unit, self.store, self.prefix, self.clock = phase, unit, store, prefix, clock
        self.started = clock()
        self.logged = self.written = self.started
        self.log_every, self.write_every = log_every_s(), min(WRITE_EVERY_S, log_every_s() or WRITE_EVERY_S)
        self.last: ProgressRecord | None = None
        self.begin()

    def begin(self) -> None:
        """Announce the phase (so a step that loads for a while is seen to have started)."""
        self._write(self._record(0, 0, None))

    def _record(self, done: int, total: int, loss: float | None) -> ProgressRecord:
        now = self.clock()
        rate = done / (now - self.started) if now > self.started else 0.0
        eta = (total - done) / rate if rate > 0 and total else None
        return ProgressRecord(self.phase, done, total, self.unit, rate, eta, loss, now, self.started)

    def __call__(self, done: int, total: int, loss: Callable[[], float] | float | None = None,
                 final: bool = False) -> None:
        now = self.clock()
        final = final or 0 < total <= done  # the phase's last call: always a line
        due_log = final or (self.log_every > 0 and now - self.logged >= self.log_every)
        due_write = final or now - self.written >= self.write_every
        if not (due_log or due_write):
            return
        value = loss() if callable(loss) else loss
        record = self._record(done, total, value)
        if due_log:
            self.logged = now
            log.info("%s", record.line())
        if due_write:
            self._write(record)

    def _write(self, record: ProgressRecord) -> None:
        self.last = record
        self.written = record.updated
        if self.store is not None and self.prefix is not None:
            try:
                self.store.write_bytes(f"{self.prefix}/{PROGRESS}", record.to_bytes())
            except Exception as exc:  # advisory: a store hiccup must not fail the step
                log.warning("could not write progress: %s", exc)


def read_progress(store: Store, prefix: str) -> ProgressRecord | None:
    key = f"{prefix}/{PROGRESS}"
    try:
        return ProgressRecord.from_bytes(store.read_bytes(key)) if store.exists(key) else None
    except Exception:
        return None
