"""Where a run stands, from one listing of the store: per step kind how many steps are done,
running (a live claim), failed (``_FAILED``, or what the running controller saw fail) and to
do; the failed steps' one-line errors; the running steps' progress."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from controller.plan.graph import Plan
from jobs.contract.claims import CLAIMS, current
from jobs.contract.progress import PROGRESS, ProgressRecord, read_progress
from jobs.contract.steps import FAILED, LOG, MARKER, read_failure, scan_steps
from jobs.storage import Store

STATES = ("done", "running", "failed", "to do")


@dataclass(frozen=True)
class StepState:
    kind: str
    step: str
    label: str
    state: str
    error: str = ""
    log: str | None = None
    """The step's log in the store (a key), when there is one."""
    progress: ProgressRecord | None = None


@dataclass(frozen=True)
class RunState:
    counts: dict[str, Counter]
    """Kind -> state -> steps."""
    failed: tuple[StepState, ...] = ()
    running: tuple[StepState, ...] = ()
    done_prefixes: frozenset[str] = field(default_factory=frozenset)

    @property
    def total(self) -> Counter:
        out: Counter = Counter()
        for c in self.counts.values():
            out.update(c)
        return out

    @property
    def finished(self) -> bool:
        return self.total["done"] == sum(self.total.values())


def _listing(store: Store) -> tuple[set[str], ...]:
    """Prefixes with a commit, a failure, a claim, a progress record, a log."""
    found = scan_steps(store, (MARKER, FAILED, CLAIMS, PROGRESS, LOG))
    return found[MARKER], found[FAILED], found[CLAIMS], found[PROGRESS], found[LOG]


def _one_line(error: str) -> str:
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "failed"


def finished_state(plan: Plan) -> RunState:
    """Every step of the plan committed: nothing to list."""
    counts: dict[str, Counter] = {}
    for step in plan.steps.values():
        counts.setdefault(step.kind, Counter())["done"] += 1
    return RunState(counts, done_prefixes=frozenset(s.prefix for s in plan.steps.values()))


def _live(store: Store, prefix: str) -> bool:
    held = current(store, prefix)
    return held is not None and held.live()


def _error(store: Store, prefix: str, marked: bool, seen: str) -> str:
    """The one-line error of a failed step: its ``_FAILED`` record's, else what the run saw."""
    record = read_failure(store, prefix) if marked else None
    return _one_line(str(record.get("error", "")) if record else seen)


def run_state(store: Store, plan: Plan, seen_failed: dict[str, str] | None = None,
              committed: set[str] | None = None) -> RunState:
    """``seen_failed``: step id -> error, what this controller saw fail (a crash leaves no
    ``_FAILED``: it may succeed when retried). ``committed``: the committed prefixes, when
    the caller knows them; if they cover the plan, the store is not listed (a finished grid's
    report is read from its records alone)."""
    if committed is not None and all(s.prefix in committed for s in plan.steps.values()):
        return finished_state(plan)
    done, failed, claimed, progress, logs = _listing(store)
    seen_failed = seen_failed or {}
    counts: dict[str, Counter] = {}
    failures, running = [], []
    for sid, step in plan.steps.items():
        prefix = step.prefix
        log = f"{prefix}/{LOG}" if prefix in logs else None
        state = "to do"
        if prefix in done:
            state = "done"
        elif prefix in claimed and _live(store, prefix):
            state = "running"
            running.append(StepState(step.kind, sid, step.label, state, log=log,
                                     progress=read_progress(store, prefix) if prefix in progress else None))
        elif prefix in failed or sid in seen_failed:
            state = "failed"
            failures.append(StepState(step.kind, sid, step.label, state, _error(store, prefix, prefix in failed,
                                                                                seen_failed.get(sid, "")), log))
        counts.setdefault(step.kind, Counter())[state] += 1
    return RunState(counts, tuple(failures), tuple(running), frozenset(done))
