"""Which environments (library versions, device) computed a grid's committed steps.

Each ``_SUCCESS`` record names its environment (``jobs.contract.environment``). Steps are
compared on the versions every one of them records (a step committed before a library's
version was recorded is not called different for it). When a grid's steps come from more
than one environment, ``ctune report`` and the page say so (which versions differ, which
steps ran under each), and ``ctune verify`` lists them; ``ctune run --redo-older-env`` takes
back the steps of every other environment than the one the run computes in (the local
backend: this installation's; a cluster: the one of the most recently finished step), with
what was computed from them, and computes them again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from controller.plan.graph import Plan
from controller.run.verify import dependents_of
from jobs.contract.environment import (
    UNRECORDED,
    Environment,
    describe,
    differing,
    of_record,
    recorded_keys,
    restricted,
)
from jobs.contract.steps import MARKER, read_record
from jobs.storage import Store, StoreError

REDO_OPTION = "--redo-older-env"


@dataclass(frozen=True)
class StepEnvironment:
    """What a committed step's record says of where it was computed."""

    environment: Environment
    device: str
    """``cpu`` or ``gpu`` (or unrecorded): what one kind's steps are compared on."""
    device_name: str
    finished: float

    def to_json(self) -> dict:
        return {"versions": dict(self.environment), "device": self.device, "device_name": self.device_name,
                "finished": self.finished}

    @staticmethod
    def from_json(raw: dict) -> StepEnvironment:
        device = str(raw.get("device") or UNRECORDED)
        name = str(raw.get("device_name") or device)
        return StepEnvironment(of_record(raw), device if device in ("cpu", "gpu") else UNRECORDED, name,
                               float(raw.get("finished") or 0.0))


def read_step_environment(store: Store, prefix: str) -> dict:
    """A committed step's environment as JSON (what the report's cell cache keeps)."""
    return StepEnvironment.from_json(read_record(store, prefix)).to_json()


@dataclass(frozen=True)
class Group:
    environment: Environment
    """On the versions every step records."""
    steps: tuple[str, ...]
    """Step ids, in plan order."""
    newest: float


def group(found: dict[str, StepEnvironment]) -> list[Group]:
    """The steps by environment, the environment of the most recently finished step first."""
    keys = recorded_keys([env.environment for env in found.values()])
    by: dict[Environment, list[str]] = {}
    for sid, env in found.items():
        by.setdefault(restricted(env.environment, keys), []).append(sid)
    groups = [Group(env, tuple(sids), max(found[s].finished for s in sids)) for env, sids in by.items()]
    return sorted(groups, key=lambda g: -g.newest)


def older(found: dict[str, StepEnvironment], reference: Environment | None = None) -> list[str]:
    """The steps computed under another environment than ``reference`` (compared on the
    versions both record), or, without one, than the most recently finished step's."""
    if reference is None:
        return [sid for g in group(found)[1:] for sid in g.steps]
    out = []
    for sid, env in found.items():
        keys = recorded_keys([env.environment, reference])
        if restricted(env.environment, keys) != restricted(reference, keys):
            out.append(sid)
    return out


def devices_by_kind(found: dict[str, StepEnvironment], kind_of: Callable[[str], str]) -> dict[str, dict[str, int]]:
    """Kind -> device name -> steps, for the kinds whose steps ran on both CPU and GPU."""
    classes: dict[str, set[str]] = {}
    counts: dict[str, dict[str, int]] = {}
    for sid, env in found.items():
        if env.device == UNRECORDED:
            continue
        kind = kind_of(sid)
        classes.setdefault(kind, set()).add(env.device)
        per = counts.setdefault(kind, {})
        per[env.device_name] = per.get(env.device_name, 0) + 1
    return {kind: counts[kind] for kind, seen in classes.items() if len(seen) > 1}


def _named(sids: tuple[str, ...], label: Callable[[str], str], most: int) -> str:
    names = [label(s) for s in sids[:most]]
    return "; ".join(names) + (f"; and {len(sids) - most} more" if len(sids) > most else "")


def format_mixed(found: dict[str, StepEnvironment], label: Callable[[str], str], kind_of: Callable[[str], str],
                 spec_path: str = "SPEC", most: int = 6) -> list[str]:
    """Markdown lines saying that a grid's steps come from more than one environment, or
    ran one kind of step on both CPU and GPU; none when they do not."""
    lines: list[str] = []
    groups = group(found)
    if len(groups) > 1:
        keys = differing([g.environment for g in groups])
        lines += ["", f"**Mixed environments:** the {len(found)} committed steps were computed under "
                  f"{len(groups)} environments, which differ in {', '.join(keys)}; results from different "
                  "library versions may not be comparable:", ""]
        for i, g in enumerate(groups):
            tag = "newest" if i == 0 else "older"
            lines.append(f"* {describe(g.environment, keys)} ({tag}): {len(g.steps)} step(s): "
                         f"{_named(g.steps, label, most)}")
        lines += ["", f"`ctune run {spec_path} {REDO_OPTION}` computes again the steps of another environment than "
                  "the one it computes in (and what was computed from them)."]
    mixed_devices = devices_by_kind(found, kind_of)
    if mixed_devices:
        lines += ["", "**Mixed devices:** " + "; ".join(
            f"{kind} steps ran on " + ", ".join(f"{device} ({n})" for device, n in sorted(per.items()))
            for kind, per in sorted(mixed_devices.items())) + "; CPU and GPU sums differ in their last digits."]
    return lines


def format_single(found: dict[str, StepEnvironment]) -> str:
    """One line naming the environment of a grid whose steps share one."""
    groups = group(found)
    if not groups:
        return "no committed steps"
    if len(groups) > 1:
        return f"{len(groups)} environments"
    return f"all {len(found)} committed steps under one environment: {describe(groups[0].environment)}"


def read_environments(store: Store, prefixes: dict[str, str]) -> dict[str, StepEnvironment]:
    """Step id -> environment, read from the committed steps' records (``prefixes``: id ->
    prefix); a step whose record is gone meanwhile is left out."""

    def read(prefix: str) -> dict | None:
        try:
            return read_step_environment(store, prefix)
        except StoreError:
            if store.exists(f"{prefix}/{MARKER}"):
                raise  # not gone: the store failed
            return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        found = dict(zip(prefixes, pool.map(read, prefixes.values())))
    return {sid: StepEnvironment.from_json(raw) for sid, raw in found.items() if raw is not None}


def committed_environments(store: Store, plan: Plan, done: set[str]) -> dict[str, StepEnvironment]:
    return read_environments(store, {sid: st.prefix for sid, st in plan.steps.items() if st.prefix in done})


def to_take_back(plan: Plan, found: dict[str, StepEnvironment], among: set[str],
                 reference: Environment | None) -> tuple[list[str], list[str]]:
    """The committed steps of ``among`` computed under another environment than ``reference``
    (see :func:`older`), and those with every committed step computed from them, in plan order."""
    stale = [sid for sid in older(found, reference) if sid in among]
    return stale, [sid for sid in dependents_of(plan, set(stale)) if sid in found]
