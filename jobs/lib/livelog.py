"""A running step's log, copied to the store while it runs (``ctune logs --follow`` reads it).

The entry point captures a step's output in a buffer (``CTUNE_LOG_TO_STORE=1``); once the
step is claimed by this process (and only then: a step claimed elsewhere has its log
written by its own process), a thread copies the buffer to ``<step>/log.txt`` every
``CTUNE_LOG_FLUSH_S`` seconds when it grew. The entry point writes the whole log once more
when the step ends, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import io
import threading

from jobs.contract.steps import LOG
from jobs.storage import Store, env_seconds

FLUSH_ENV = "CTUNE_LOG_FLUSH_S"
DEFAULT_FLUSH_S = 10.0


def flush_every_s() -> float:
    return env_seconds(FLUSH_ENV, DEFAULT_FLUSH_S, low=0.2)


class _LiveLog:
    def __init__(self, buffer: io.StringIO):
        self.buffer = buffer
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, store: Store, prefix: str) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, args=(store, f"{prefix}/{LOG}"), name="live-log",
                                           daemon=True)
            self.thread.start()

    def _run(self, store: Store, key: str) -> None:
        written = 0
        while not self.stop.wait(flush_every_s()):
            text = self.buffer.getvalue()
            if len(text) != written:
                with contextlib.suppress(Exception):  # advisory: the final write is the one that counts
                    store.write_bytes(key, text.encode())
                    written = len(text)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)


_current: _LiveLog | None = None


@contextlib.contextmanager
def capturing(buffer: io.StringIO):
    """While a step's output goes to ``buffer``: ``claimed()`` starts copying it live."""
    global _current
    _current = _LiveLog(buffer)
    try:
        yield
    finally:
        live, _current = _current, None
        live.close()


def claimed(store: Store, prefix: str) -> None:
    """This process holds the step now: its log may go to the store as it grows."""
    if _current is not None:
        _current.start(store, prefix)
