"""Which environments (library versions, device) computed a grid's committed steps.

Each ``_SUCCESS`` record names its environment (``jobs.contract.environment``). When a grid's
steps come from more than one, ``ctune report`` and the page say so (which versions differ,
which steps ran under each), ``ctune verify`` lists them, and ``ctune run --redo-older-env``
takes back the steps of every environment but the newest (the one that computed the most
recently finished step), with what was computed from them, and computes them again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from controller.plan.graph import Plan
from controller.run.verify import dependents, invalidate
from jobs.contract.environment import Environment, describe, differing, of_record
from jobs.contract.steps import read_record
from jobs.storage import Store

REDO_OPTION = "--redo-older-env"


@dataclass(frozen=True)
class StepEnvironment:
    """What a committed step's record says of where it was computed."""

    environment: Environment
    device: str
    finished: float

    def to_json(self) -> dict:
        return {"versions": dict(self.environment), "device": self.device, "finished": self.finished}

    @staticmethod
    def from_json(raw: dict) -> StepEnvironment:
        return StepEnvironment(of_record(raw), str(raw.get("device") or "unrecorded"), float(raw.get("finished") or 0.0))


def read_step_environment(store: Store, prefix: str) -> dict:
    """A committed step's environment as JSON (what the report's cell cache keeps)."""
    record = read_record(store, prefix)
    device = record.get("device_name") or record.get("device") or "unrecorded"
    return StepEnvironment(of_record(record), str(device), float(record.get("finished") or 0.0)).to_json()


@dataclass(frozen=True)
class Group:
    environment: Environment
    steps: tuple[str, ...]
    """Step ids, in plan order."""
    newest: float


def group(found: dict[str, StepEnvironment]) -> list[Group]:
    """The steps by environment, the environment of the most recently finished step first."""
    by: dict[Environment, list[str]] = {}
    for sid, env in found.items():
        by.setdefault(env.environment, []).append(sid)
    groups = [Group(env, tuple(sids), max(found[s].finished for s in sids)) for env, sids in by.items()]
    return sorted(groups, key=lambda g: -g.newest)


def older(found: dict[str, StepEnvironment]) -> list[str]:
    """The steps computed under another environment than the newest step's."""
    return [sid for g in group(found)[1:] for sid in g.steps]


def devices_by_kind(found: dict[str, StepEnvironment], kind_of: Callable[[str], str]) -> dict[str, dict[str, int]]:
    """Kind -> device -> steps, for the kinds whose steps ran on more than one device."""
    counts: dict[str, dict[str, int]] = {}
    for sid, env in found.items():
        per = counts.setdefault(kind_of(sid), {})
        per[env.device] = per.get(env.device, 0) + 1
    return {kind: per for kind, per in counts.items() if len(per) > 1}


def _named(sids: tuple[str, ...], label: Callable[[str], str], most: int) -> str:
    names = [label(s) for s in sids[:most]]
    return "; ".join(names) + (f"; and {len(sids) - most} more" if len(sids) > most else "")


def format_mixed(found: dict[str, StepEnvironment], label: Callable[[str], str], kind_of: Callable[[str], str],
                 spec_path: str = "SPEC", most: int = 6) -> list[str]:
    """Markdown lines saying that a grid's steps come from more than one environment, or
    ran one kind of step on more than one device; none when they do not."""
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
        lines += ["", f"`ctune run {spec_path} {REDO_OPTION}` computes the {sum(len(g.steps) for g in groups[1:])} "
                  "older step(s) again (and what was computed from them)."]
    mixed_devices = devices_by_kind(found, kind_of)
    if mixed_devices:
        lines += ["", "**Mixed devices:** " + "; ".join(
            f"{kind} steps ran on " + ", ".join(f"{device} ({n})" for device, n in sorted(per.items()))
            for kind, per in sorted(mixed_devices.items())) + "."]
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
    """Step id -> environment, read from the committed steps' records (``prefixes``: id -> prefix)."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        found = dict(zip(prefixes, pool.map(lambda p: read_step_environment(store, p), prefixes.values())))
    return {sid: StepEnvironment.from_json(raw) for sid, raw in found.items()}


def committed_environments(store: Store, plan: Plan, done: set[str]) -> dict[str, StepEnvironment]:
    return read_environments(store, {sid: st.prefix for sid, st in plan.steps.items() if st.prefix in done})


def take_back_older(store: Store, plan: Plan, found: dict[str, StepEnvironment], done: set[str]) -> list[str]:
    """Uncommit the steps of older environments and every committed step computed from them;
    the prefixes taken back (``ctune run`` then computes them again)."""
    hit: dict[str, None] = {}
    for sid in older(found):
        hit.update(dict.fromkeys(dependents(plan, sid)))
    return invalidate(store, plan, [sid for sid in plan.steps if sid in hit and plan.steps[sid].prefix in done])
