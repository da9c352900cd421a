"""Decide, from what the store and the cluster say, what the Kubernetes backend does next.

A pure function of its observations (no API, no store): given the Jobs that exist, the
steps that are committed or failed on a bad input, and what this run already gave up on,
:func:`reconcile` returns a :class:`Decision`. The backend observes, decides, acts, waits,
and again; a controller restarted at any moment observes the same things and decides the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.plan.packing import JobUnit
from controller.run.kube.api import JobState
from controller.run.scheduler import schedule
from jobs.contract.steps import StepSpec


@dataclass(frozen=True)
class Observed:
    units: Mapping[str, JobUnit]
    """The Jobs still to see through, by name."""
    jobs: Mapping[str, JobState]
    """The experiment's Jobs on the cluster, by name."""
    done: frozenset[str]
    """Ids of committed steps."""
    failed_input: frozenset[str]
    """Ids of steps that reported a bad input (``_FAILED``)."""
    gave_up: frozenset[str]
    """Ids of steps this run already reported failed or blocked."""
    reported: frozenset[str]
    """Ids of steps this run already reported committed (or found so at its start)."""
    max_in_flight: int


@dataclass(frozen=True)
class Failure:
    unit: JobUnit
    reason: str
    """Why (the Job's message, or what went wrong); the step's log follows it."""
    log_of: StepSpec
    """The step whose log explains it."""
    delete: bool = False
    """Delete the Job first: a bad input, retrying will not help."""


@dataclass
class Decision:
    committed: list[StepSpec] = field(default_factory=list)
    """Steps newly found committed."""
    finished: list[str] = field(default_factory=list)
    """Units whose every step is committed."""
    submit: list[JobUnit] = field(default_factory=list)
    """Create these Jobs (after clearing an earlier run's ``_FAILED`` of their steps)."""
    fail: list[Failure] = field(default_factory=list)
    block: list[JobUnit] = field(default_factory=list)
    """Not run: a step they read failed."""


def in_flight(units: Mapping[str, JobUnit], jobs: Mapping[str, JobState]) -> int:
    return sum(1 for n in units if n in jobs and not (jobs[n].complete or jobs[n].failed_for_good))


def _judge_job(unit: JobUnit, job: JobState, todo: list[StepSpec], failed_input: frozenset[str]) -> Failure | None:
    bad = next((s for s in todo if s.id in failed_input), None)
    if bad is not None:
        return Failure(unit, "", bad, delete=True)
    if job.failed_for_good:
        return Failure(unit, f"Job {unit.name}: {job.message}", todo[0])
    if job.complete:
        return Failure(unit, f"Job {unit.name} completed but step {todo[0].id} is not done", todo[0])
    return None


def reconcile(seen: Observed) -> Decision:
    """What to do now."""
    decision = Decision()
    open_units: dict[str, JobUnit] = {}
    for name, unit in seen.units.items():
        decision.committed += [s for s in unit.steps if s.id in seen.done and s.id not in seen.reported]
        if all(s.id in seen.done for s in unit.steps):
            decision.finished.append(name)
        else:
            open_units[name] = unit
    now = schedule(open_units.values(), seen.done, frozenset(seen.jobs), seen.gave_up,
                   seen.max_in_flight - in_flight(seen.units, seen.jobs))
    decision.block, decision.submit = list(now.blocked), list(now.start)
    blocked = {u.name for u in now.blocked}
    for name, unit in open_units.items():
        job = seen.jobs.get(name)
        if job is not None and name not in blocked:
            failure = _judge_job(unit, job, [s for s in unit.steps if s.id not in seen.done], seen.failed_input)
            if failure is not None:
                decision.fail.append(failure)
    return decision


def stale_jobs(units: Mapping[str, JobUnit], jobs: Mapping[str, JobState]) -> list[str]:
    """Jobs of units still to run that ended in an earlier run: deleted, so this run submits
    them again. One that gave up is retried once; one that completed has a step taken back
    since (``ctune invalidate``, ``verify``, ``run --redo-older-env``), to be computed again."""
    return [name for name, job in jobs.items() if name in units and (job.failed_for_good or job.complete)]
