"""``ctune logs SPEC STEP --follow``: print a step's log as it grows in the store (a running
step copies it there every few seconds, ``jobs.lib.livelog``), until the step is committed
(exit 0), failed on a bad input (exit 1), or stopped without either (exit 1)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from jobs.contract.claims import current
from jobs.contract.errors import EXIT_FAILED, EXIT_OK
from jobs.contract.steps import LOG, StepSpec, is_done, read_failure
from jobs.storage import Store, StoreError


def _log(store: Store, prefix: str) -> str:
    try:
        return store.read_bytes(f"{prefix}/{LOG}").decode(errors="replace")
    except StoreError:
        return ""


def follow(store: Store, step: StepSpec, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
           poll_s: float = 2.0, clock=time.monotonic, sleep=time.sleep) -> int:
    printed = 0
    waiting_said = False
    stopped_since: float | None = None
    while True:
        text = _log(store, step.prefix)
        if len(text) < printed:  # a new attempt began its own log
            print("--- the step started again ---", file=err, flush=True)
            printed = 0
        if len(text) > printed:
            out.write(text[printed:])
            out.flush()
            printed = len(text)
        if is_done(store, step.prefix):
            tail = _log(store, step.prefix)
            out.write(tail[printed:])
            out.flush()
            print(f"step {step.id} is done", file=err, flush=True)
            return EXIT_OK
        failure = read_failure(store, step.prefix)
        if failure is not None:
            print(f"step {step.id} failed: {failure.get('error', '')}", file=err, flush=True)
            return EXIT_FAILED
        held = current(store, step.prefix)
        if held is None:
            if not waiting_said:
                print(f"waiting for step {step.id} ({step.kind} {step.label}) to start ...", file=err, flush=True)
                waiting_said = True
        elif not held.live():
            # released or expired: give its last log a moment to land, then say so
            stopped_since = stopped_since if stopped_since is not None else clock()
            if clock() - stopped_since > 3 * poll_s:
                print(f"step {step.id} stopped without finishing (it runs again on the next `ctune run`)",
                      file=err, flush=True)
                return EXIT_FAILED
        else:
            stopped_since = None
        sleep(poll_s)
