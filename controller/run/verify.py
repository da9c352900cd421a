"""Checking committed steps against their records, and taking steps back.

``ctune run`` checks, cheaply, the committed steps the steps it is about to run read;
``ctune verify`` checks every committed step of a spec (``--deep``: hashing every file);
either uncommits what does not match, so it is computed again. ``ctune invalidate`` takes a
step and everything computed from it back by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from controller.plan.graph import Plan
from controller.run.committed import forget
from jobs.contract import integrity
from jobs.contract.steps import MARKER
from jobs.storage import Store


def check(store: Store, prefixes: Iterable[str], deep: bool = False) -> dict[str, list[str]]:
    """Prefix -> problems, for the committed steps among ``prefixes`` that do not match."""
    todo = sorted(set(prefixes))
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda p: integrity.verify(store, p, deep), todo))
    return {p: problems for p, problems in zip(todo, found) if problems}


Forgetting = Callable[[set[str]], None]
"""What else keeps knowledge of committed steps (the report's caches), told of prefixes uncommitted."""


def _forget_all(store: Store, prefixes: set[str], also: Forgetting | None) -> None:
    forget(store, prefixes)
    if also is not None:
        also(prefixes)


def uncommit_broken(store: Store, broken: dict[str, list[str]], also: Forgetting | None = None) -> None:
    _forget_all(store, set(broken), also)
    for prefix, problems in broken.items():
        integrity.uncommit(store, prefix, problems)
    _forget_all(store, set(broken), also)


def read_by(plan: Plan, todo: Iterable[str], datasets: Iterable[str]) -> set[str]:
    """The prefixes the ``todo`` steps read: their inputs, and the staged datasets."""
    inputs = {dep for sid in todo for dep in plan.steps[sid].inputs.values()}
    return inputs | set(datasets)


def dependents(plan: Plan, sid: str) -> list[str]:
    """``sid`` and every step computed from it, directly or not, in plan order."""
    return dependents_of(plan, {sid})


def dependents_of(plan: Plan, sids: set[str]) -> list[str]:
    """``sids`` and every step computed from any of them, directly or not, in plan order."""
    by_prefix = {step.prefix: s for s, step in plan.steps.items()}
    hit = set(sids)
    for s, step in plan.steps.items():  # the plan is in dependency order
        if any(by_prefix.get(dep) in hit for dep in step.inputs.values()):
            hit.add(s)
    return [s for s in plan.steps if s in hit]


def invalidate(store: Store, plan: Plan, sids: list[str], also: Forgetting | None = None) -> list[str]:
    """Remove the steps (``sids`` in plan order). Every record that trusts them forgets them
    before and after their commit records go, and the records go dependents first: a crash
    leaves no committed step on an uncommitted input, and nothing calling a step committed
    that is not."""
    prefixes = [plan.steps[s].prefix for s in sids]
    _forget_all(store, set(prefixes), also)
    for prefix in reversed(prefixes):
        store.delete(f"{prefix}/{MARKER}")
    _forget_all(store, set(prefixes), also)
    for prefix in prefixes:
        store.delete_prefix(prefix)
    return prefixes
