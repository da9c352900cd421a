"""Which of a plan's steps are committed, without listing the whole store every time.

A step, once committed, stays committed unless ``ctune verify`` or ``ctune invalidate``
uncommits it (they then :func:`forget` it in every experiment's record), so what a run saw
committed is kept beside the experiment
(``experiments/<name>/committed.json``) and trusted: the store is listed only when a step of
the plan is not known committed yet. A grid that is done answers from one read; one that
runs lists the store once per command. ``ctune run --recheck`` lists it whatever the cache
says (after steps were deleted by hand).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from jobs.contract.steps import done_steps
from jobs.storage import Store, StoreError

COMMITTED = "committed.json"


def _key(experiment: str) -> str:
    return f"experiments/{experiment}/{COMMITTED}"


def _read(store: Store, experiment: str) -> set[str]:
    try:
        return set(json.loads(store.read_bytes(_key(experiment)))["steps"])
    except (StoreError, ValueError, KeyError, TypeError):
        return set()


def committed(store: Store, experiment: str, prefixes: Iterable[str], recheck: bool = False) -> set[str]:
    """The committed ones of ``prefixes``: from the cache when it knows them all, else listed."""
    wanted = set(prefixes)
    known = set() if recheck else _read(store, experiment) & wanted
    if known == wanted:
        return known
    found = done_steps(store) & wanted
    if found != known:
        remember(store, experiment, found)
    return found


def remember(store: Store, experiment: str, prefixes: set[str]) -> None:
    """Keep what was seen committed (merged with what was known)."""
    every = sorted(prefixes | _read(store, experiment))
    store.write_bytes(_key(experiment), json.dumps({"steps": every}, separators=(",", ":")).encode())


def forget(store: Store, prefixes: set[str]) -> None:
    """Drop uncommitted steps from every experiment's record (a step may serve several)."""
    for key in [k for k in store.list("experiments") if k.endswith(f"/{COMMITTED}")]:
        experiment = key.split("/")[1]
        known = _read(store, experiment)
        if known & prefixes:
            store.write_bytes(key, json.dumps({"steps": sorted(known - prefixes)}, separators=(",", ":")).encode())
