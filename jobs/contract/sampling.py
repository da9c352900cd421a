"""The labeled samples: which train texts a cell of (budget, repetition) learns from.

Part of the contract because the controller proposes the same samples (``ctune suggest``)
and reads them back (the advice), and because every setting of a (budget, repetition)
must see the same sample, whichever job draws it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jobs.contract.errors import JobError


def sample_indices(n_train: int, budget: int, repetition: int, sample_seed: int) -> np.ndarray:
    """The labeled sample for (budget, repetition): the same for every setting (not stratified)."""
    if budget > n_train:
        raise JobError(f"budget {budget} is larger than the train set ({n_train} texts)")
    rng = np.random.default_rng([sample_seed, budget, repetition])
    return np.sort(rng.choice(n_train, size=budget, replace=False))


def allocate_by_size(budget: int, sizes: Sequence[int]) -> list[int]:
    """Labels per cluster, proportional to size with at least one each (the largest clusters
    first when the budget is smaller than the number of clusters)."""
    size = np.asarray(sizes, dtype=int)
    if budget > size.sum():
        raise JobError(f"budget {budget} is larger than the corpus ({int(size.sum())} texts)")
    counts = np.zeros(len(size), dtype=int)
    nonempty = np.flatnonzero(size > 0)
    counts[nonempty[np.argsort(-size[nonempty], kind="stable")][:budget]] = 1
    ideal = budget * size / max(int(size.sum()), 1)
    for _ in range(budget - int(counts.sum())):  # each next label to the cluster furthest below its share
        deficit = np.where(counts < size, ideal - counts, -np.inf)
        counts[int(np.argmax(deficit))] += 1
    allocated: list[int] = counts.tolist()
    return allocated


def cluster_sample_indices(assignments: Sequence[int], budget: int, repetition: int,
                           sample_seed: int) -> np.ndarray:
    """A sample spread over the clusters by size; random within each cluster."""
    labels = np.asarray(assignments)
    k = int(labels.max()) + 1
    counts = allocate_by_size(budget, np.bincount(labels, minlength=k).tolist())
    rng = np.random.default_rng([sample_seed, budget, repetition, 1])
    picked = [rng.choice(np.flatnonzero(labels == c), size=n, replace=False) for c, n in enumerate(counts) if n]
    return np.sort(np.concatenate(picked))
