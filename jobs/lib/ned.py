"""Normalized embedding distance (NED) and its permutation test (paper section 5.3).

NED of embeddings with labels: the mean distance between two texts of the same class
divided by the mean distance between any two texts. 1 means the classes are no tighter
than the whole set; the lower, the better the classes are separated. Being a ratio it
compares encoders whose embeddings have different scales. Inter-training helps when
NED after < NED before; the permutation test asks whether the drop is larger than the
drop under shuffled labels (one permutation of the labels shared by both encoders).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``x`` (float64, zero diagonal)."""
    x = np.asarray(x, dtype=np.float64)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    y = np.zeros((len(labels), int(inverse.max()) + 1))
    y[np.arange(len(labels)), inverse] = 1.0
    return y


def ned(dist: np.ndarray, labels) -> float:
    """Mean same-class pair distance / mean pair distance (pairs of distinct texts)."""
    return float(_ned_many(dist, np.asarray(labels)[None, :])[0])


def _ned_many(dist: np.ndarray, label_rows: np.ndarray) -> np.ndarray:
    """NED for each row of labels over the same distance matrix."""
    n = dist.shape[0]
    mean_all = dist.sum() / (n * (n - 1))
    out = np.empty(len(label_rows))
    for r, labels in enumerate(label_rows):
        y = _one_hot(labels)
        same_sum = float(np.einsum("ik,ik->", dist @ y, y))  # sum over ordered same-class pairs
        counts = y.sum(0)
        same_pairs = float((counts * (counts - 1)).sum())
        out[r] = (same_sum / same_pairs) / mean_all if same_pairs else np.nan
    return out


@dataclass(frozen=True)
class NedTest:
    before: float
    after: float
    p_value: float
    """One-sided: the share of label permutations whose drop (before - after) is at least the observed one."""
    permutations: int
    null_mean_drop: float
    n_texts: int

    @property
    def drop(self) -> float:
        return self.before - self.after

    def as_dict(self) -> dict:
        return {"ned_before": self.before, "ned_after": self.after, "drop": self.drop, "p_value": self.p_value,
                "permutations": self.permutations, "null_mean_drop": self.null_mean_drop, "n_texts": self.n_texts}


def ned_permutation_test(before: np.ndarray, after: np.ndarray, labels, permutations: int = 1000,
                         seed: int = 0) -> NedTest:
    """Compare NED of two embeddings of the same texts; ``before``/``after`` are (n, d) arrays."""
    labels = np.asarray(labels)
    if len(labels) != len(before) or len(before) != len(after):
        raise ValueError("before, after and labels must describe the same texts")
    if len(np.unique(labels)) < 2:
        raise ValueError("NED needs at least two classes")
    d_before, d_after = pairwise_distances(before), pairwise_distances(after)
    observed = ned(d_before, labels) - ned(d_after, labels)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(labels) for _ in range(permutations)])
    null = _ned_many(d_before, shuffled) - _ned_many(d_after, shuffled)
    p = (1 + int((null >= observed).sum())) / (permutations + 1)
    return NedTest(ned(d_before, labels), ned(d_after, labels), p, permutations, float(null.mean()), len(labels))
