"""What every backend shares: the :class:`Backend` protocol, the events it reports, its
result, writing ``step.json``, and the store's mark of a cancelled run.

A backend starts units of work (``controller.plan.packing.JobUnit``) and sees them finish;
which units start, and which are blocked, it asks ``controller.run.scheduler.schedule``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from controller.plan.graph import Plan
from controller.plan.packing import JobUnit
from jobs.contract.steps import STEP_FILE, StepSpec
from jobs.storage import Store


@dataclass
class Event:
    """A change the progress display shows."""

    kind: str  # "start", "done", "failed", "blocked"; "waiting": not started yet (detail: why)
    step: StepSpec
    seconds: float = 0.0
    detail: str = ""
    unit: tuple[StepSpec, ...] = ()
    """On "start": every step the process runs, in order (a pack runs several)."""


OnEvent = Callable[[Event], None]


@dataclass
class RunResult:
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    already_done: int = 0
    elsewhere: list[str] = field(default_factory=list)
    """Steps another controller's process computed while this run waited for them."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def gave_up(self, sid: str) -> bool:
        """The step failed or will not run: its dependents cannot."""
        return sid in self.failed or sid in self.blocked


class Backend(Protocol):
    """Runs a plan's steps not yet committed, reporting each change to ``on_event``, and
    returns what ran, failed and was blocked. ``LocalBackend`` (processes here) and
    ``KubernetesBackend`` (``batch/v1`` Jobs) are the two; ``docs/architecture.md`` says
    what a third takes."""

    def run(self, plan: Plan, on_event: OnEvent = ...) -> RunResult: ...


class JobsView(Protocol):
    """What a backend can tell of a run beyond the store (``ctune status``, ``ctune logs``)."""

    def jobs_line(self) -> str:
        """A line on the backend's own units of work (e.g. the Jobs by state), then one per unit
        that waits to start and why."""
        ...

    def log_tail(self, step: StepSpec) -> str:
        """A step's output while the store has no log of it yet ("" when none)."""
        ...


CANCELLED = "_CANCELLED"


def cancel_marker(experiment: str) -> str:
    """Where ``ctune cancel`` marks a run cancelled: a running controller stops on it."""
    return f"experiments/{experiment}/{CANCELLED}"


def start_event(unit: JobUnit, todo: int | None = None) -> Event:
    """One line for a unit's start: its first step, and how many more cells run with it."""
    more = (len(unit.steps) if todo is None else todo) - 1
    return Event("start", unit.steps[0], detail=f"+{more} more cell(s) in this process" if more > 0 else "",
                 unit=tuple(unit.steps))


def write_step_files(store: Store, steps: Iterable[StepSpec]) -> None:
    """Each step's ``step.json``, unless there (its content is fixed by the step's id, and a
    step another controller committed meanwhile is never written to); many at once on a
    store over the network."""
    todo = list(steps)

    def write(step: StepSpec) -> None:
        store.create_bytes(f"{step.prefix}/{STEP_FILE}", step.to_json().encode())

    if len(todo) < 4:
        for step in todo:
            write(step)
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, todo))


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
