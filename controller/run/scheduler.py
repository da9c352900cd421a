"""Which units of work start now, and which never will: one pure function for every backend.

A unit (``controller.plan.packing.JobUnit``: one step, or a pack of cells) is ready when every
step it reads is committed, and blocked when a step it reads failed or was itself blocked. The
local backend asks this of its pending processes, the Kubernetes backend of the Jobs it has not
created (``controller.run.kube.reconcile``); a third backend (another queue, Slurm, Ray) asks
the same and only says how it starts a unit and how it sees one finish.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

from controller.plan.packing import JobUnit


@dataclass(frozen=True)
class Schedule:
    start: tuple[JobUnit, ...]
    """Ready units to start now, in the order given, no more than the free places."""
    blocked: tuple[JobUnit, ...]
    """Units that will not run: a step they read failed or was blocked."""


def reads(unit: JobUnit, done: Set[str] = frozenset()) -> set[str]:
    """Ids of the steps that a unit's steps still to run read, other than its own."""
    own = {s.id for s in unit.steps}
    return {d for s in unit.steps if s.id not in done for d in s.deps()} - own


def schedule(units: Iterable[JobUnit], done: Set[str], started: Set[str], gave_up: Set[str],
             free: int) -> Schedule:
    """Of ``units`` (each with a step still to run): ``done``, ids of committed steps;
    ``started``, names of units already started (never started again, though they can be
    blocked); ``gave_up``, ids of steps failed or blocked; ``free``, places for new units."""
    start: list[JobUnit] = []
    blocked: list[JobUnit] = []
    for unit in units:
        deps = reads(unit, done)
        if deps & gave_up:
            blocked.append(unit)
        elif unit.name not in started and deps <= done and len(start) < free:
            start.append(unit)
    return Schedule(tuple(start), tuple(blocked))
