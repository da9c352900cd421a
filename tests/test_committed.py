"""What the controller remembers between runs: committed steps and what the report read."""

from __future__ import annotations

import pytest

from controller.report.cache import CellCache
from controller.run.committed import committed
from jobs.storage import open_store

pytestmark = pytest.mark.unit


class CountingStore:
    """A local store that counts its listings and reads."""

    def __init__(self, root):
        self.inner = open_store(root)
        self.root = self.inner.root
        self.listings = self.reads = 0

    def list(self, prefix):
        self.listings += 1
        return self.inner.list(prefix)

    def read_bytes(self, key):
        self.reads += 1
        return self.inner.read_bytes(key)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_finished_plan_is_answered_without_listing_the_store(tmp_path):
    # GIVEN three steps, two committed
    store = CountingStore(tmp_path)
    prefixes = ["steps/a/1", "steps/a/2", "steps/b/3"]
    for p in prefixes[:2]:
        store.write_bytes(f"{p}/_SUCCESS", b"{}")
    # WHEN asked twice while one is not committed, THEN the store is listed each time
    assert committed(store, "x", prefixes) == set(prefixes[:2])
    assert committed(store, "x", prefixes) == set(prefixes[:2]) and store.listings == 2
    # AND once all are committed, the record answers: one listing to learn it, none after
    store.write_bytes("steps/b/3/_SUCCESS", b"{}")
    assert committed(store, "x", prefixes) == set(prefixes) and store.listings == 3
    assert committed(store, "x", prefixes) == set(prefixes) and store.listings == 3
    # AND a recheck lists again (after steps were deleted by hand)
    store.delete_prefix("steps/a/1")
    assert committed(store, "x", prefixes) == set(prefixes)
    assert committed(store, "x", prefixes, recheck=True) == set(prefixes[1:]) and store.listings == 4


def test_the_report_reads_a_cell_once_and_an_agreement_per_clustering(tmp_path):
    store = CountingStore(tmp_path)
    cache = CellCache(store, "experiments/x/report")
    calls: list[str] = []
    assert cache.of_step("c1", "metrics", lambda: calls.append("m") or {"accuracy": 0.5}) == {"accuracy": 0.5}
    assert cache.agreement("c1", "k1", lambda: calls.append("a1") or 0.2) == 0.2
    cache.save()
    again = CellCache(store, "experiments/x/report")
    assert again.of_step("c1", "metrics", lambda: calls.append("m2") or {}) == {"accuracy": 0.5}
    assert again.agreement("c1", "k1", lambda: calls.append("a2") or 0.9) == 0.2
    assert again.agreement("c1", "k2", lambda: calls.append("a3") or 0.7) == 0.7  # another clustering
    assert calls == ["m", "a1", "a3"]
    # a drawing is redone only when its inputs change (or it is missing)
    assert not again.unchanged("experiments/x/report/plot.png", [1, 2])
    store.write_bytes("experiments/x/report/plot.png", b"png")
    assert again.unchanged("experiments/x/report/plot.png", [1, 2])
    assert not again.unchanged("experiments/x/report/plot.png", [1, 3])
