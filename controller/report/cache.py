"""What the report read of each committed cell, kept beside the report.

A committed step never changes, so what the report takes from a cell (its metrics, the
agreement of its labeled sample with a clustering) is read once, not on every run: a
re-run of a finished grid reads one object instead of two per cell. Entries are keyed by
step id (and by clustering step id for the agreement). A step uncommitted to be computed
again (``ctune verify``, ``ctune invalidate``, ``ctune run --redo-older-env``) leaves every
report's cache (:func:`forget_cached`); a report of the same experiment being written at that
moment may write its old entries back, so take steps back while no run of it is going.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from jobs.storage import Store, StoreError

CELLS = "cells.json"
VERSION = 1


class CellCache:
    def __init__(self, store: Store, report_prefix: str):
        self.store = store
        self.key = f"{report_prefix}/{CELLS}"
        self.cells: dict[str, dict[str, Any]] = {}
        self.made: dict[str, str] = {}
        """Output name -> digest of what it was made from (plots, pictures)."""
        self.dirty = False
        if store.exists(self.key):
            try:
                raw = json.loads(store.read_bytes(self.key))
                if raw.get("version") == VERSION:
                    self.cells, self.made = raw["cells"], raw.get("made", {})
            except (StoreError, ValueError, KeyError):
                pass  # a cache that cannot be read is rebuilt

    def of_step(self, step: str, what: str, read: Callable[[], Any]) -> Any:
        """What the report reads of a committed step (its metrics, its NED, its clusters' NMI)."""
        entry = self.cells.setdefault(step, {})
        if what not in entry:
            entry[what] = read()
            self.dirty = True
        return entry[what]

    def has(self, step: str, what: str, clustering: str | None = None) -> bool:
        entry = self.cells.get(step, {})
        return what in entry and (clustering is None or clustering in entry[what])

    def agreement(self, cell: str, clustering: str, compute: Callable[[], float]) -> float:
        entry = self.cells.setdefault(cell, {}).setdefault("ami", {})
        if clustering not in entry:
            entry[clustering] = compute()
            self.dirty = True
        value: float = entry[clustering]
        return value

    def unchanged(self, output: str, *inputs: Any) -> bool:
        """Whether ``output`` was last made from these inputs; records them otherwise."""
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        if self.made.get(output) == digest and self.store.exists(output):
            return True
        self.made[output] = digest
        self.dirty = True
        return False

    def save(self) -> None:
        if self.dirty:
            data = {"version": VERSION, "cells": self.cells, "made": self.made}
            self.store.write_bytes(self.key, json.dumps(data, separators=(",", ":")).encode())
            self.dirty = False


def forget_cached(store: Store, step_ids: set[str]) -> None:
    """Drop what every report's cache holds of steps that were uncommitted (they are computed
    again, perhaps to other results), and the agreements taken with such a clustering."""
    if not step_ids:
        return
    for key in [k for k in store.list("experiments") if k.endswith(f"/report/{CELLS}")]:
        cache = CellCache(store, key.rsplit("/", 1)[0])
        for sid in step_ids & set(cache.cells):
            del cache.cells[sid]
            cache.dirty = True
        for entry in cache.cells.values():
            for clustering in step_ids & set(entry.get("ami", {})):
                del entry["ami"][clustering]
                cache.dirty = True
        cache.save()
