"""Cluster sampling: the budget spread over clusters by size."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.contract.errors import JobError
from jobs.contract.sampling import allocate_by_size, cluster_sample_indices

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("budget, sizes, expected", [
    (64, [100] * 50, [2] * 14 + [1] * 36),
    (10, [5, 100, 3, 50], [1, 6, 1, 2]),
    (3, [5, 100, 3, 50], [1, 1, 0, 1]),       # fewer labels than clusters: the largest first
    (100, [1000, 10, 5, 1], [97, 1, 1, 1]),
    (9, [1, 1, 100], [1, 1, 7]),              # small clusters run out of texts
    (0, [3, 4], [0, 0]),
])
def test_allocation(budget, sizes, expected):
    counts = allocate_by_size(budget, sizes)
    assert counts == expected and sum(counts) == budget
    assert all(c <= s for c, s in zip(counts, sizes))


def test_allocation_refuses_more_than_the_corpus():
    with pytest.raises(JobError, match="budget 8 is larger than the corpus"):
        allocate_by_size(8, [3, 4])


def test_cluster_sample_is_seeded_and_spread():
    labels = np.repeat(np.arange(5), [50, 30, 10, 5, 5]).tolist()
    a = cluster_sample_indices(labels, 20, 0, 0)
    assert len(set(a.tolist())) == 20
    assert np.bincount(np.asarray(labels)[a], minlength=5).tolist() == [10, 6, 2, 1, 1]
    assert np.array_equal(a, cluster_sample_indices(labels, 20, 0, 0))
    assert not np.array_equal(a, cluster_sample_indices(labels, 20, 1, 0))
