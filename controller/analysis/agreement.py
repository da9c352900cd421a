"""Agreement between two labelings (clusters against gold labels): MI, NMI and AMI.

The same definitions and limit cases as scikit-learn's ``normalized_mutual_info_score`` and
``adjusted_mutual_info_score`` (arithmetic normalisation, natural log), in numpy alone: the
controller and its image carry no scikit-learn or SciPy. ``tests/test_agreement.py`` checks
them against scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_EPS = float(np.finfo(np.float64).eps)


def contingency(labels_true: Sequence, labels_pred: Sequence) -> np.ndarray:
    """Counts of texts per (true label, predicted label): one row per true label."""
    if len(labels_true) != len(labels_pred):
        raise ValueError(f"labelings differ in length: {len(labels_true)} and {len(labels_pred)}")
    _, rows = np.unique(np.asarray(list(labels_true), dtype=object).astype(str), return_inverse=True)
    _, cols = np.unique(np.asarray(list(labels_pred), dtype=object).astype(str), return_inverse=True)
    table = np.zeros((int(rows.max(initial=-1)) + 1, int(cols.max(initial=-1)) + 1), dtype=np.int64)
    np.add.at(table, (rows, cols), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    n = counts.sum()
    return float(-np.sum(counts / n * (np.log(counts) - math.log(n)))) if n else 0.0


def mutual_information(table: np.ndarray) -> float:
    n = float(table.sum())
    a, b = table.sum(axis=1).astype(np.float64), table.sum(axis=0).astype(np.float64)
    i, j = np.nonzero(table)
    nij = table[i, j].astype(np.float64)
    mi = np.sum(nij / n * (np.log(nij) + math.log(n) - np.log(a[i]) - np.log(b[j])))
    return max(float(mi), 0.0)


def expected_mutual_information(table: np.ndarray) -> float:
    """E[MI] under the permutation model (Vinh, Epps & Bailey 2010), summed in log space."""
    n = int(table.sum())
    a, b = table.sum(axis=1), table.sum(axis=0)
    if a.size == 1 or b.size == 1:
        return 0.0
    lg = np.array([math.lgamma(k + 1) for k in range(n + 1)])  # log k!
    emi = 0.0
    for ai in a:
        for bj in b:
            nij = np.arange(max(1, ai + bj - n), min(ai, bj) + 1)
            if nij.size == 0:
                continue
            log_p = (lg[ai] + lg[bj] + lg[n - ai] + lg[n - bj] - lg[n] - lg[nij]
                     - lg[ai - nij] - lg[bj - nij] - lg[n - ai - bj + nij])
            emi += float(np.sum(nij / n * (np.log(n * nij) - math.log(ai) - math.log(bj)) * np.exp(log_p)))
    return emi


def _trivial(table: np.ndarray) -> float | None:
    """1 when neither labeling splits the texts (or there are none), else None."""
    rows, cols = table.shape
    return 1.0 if rows == cols and rows in (0, 1) else None


def nmi(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Normalized mutual information, arithmetic mean of the two entropies."""
    table = contingency(labels_true, labels_pred)
    trivial = _trivial(table)
    if trivial is not None:
        return trivial
    mi = mutual_information(table)
    if mi == 0:
        return 0.0
    return mi / ((_entropy(table.sum(axis=1)) + _entropy(table.sum(axis=0))) / 2)


def ami(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Mutual information adjusted for chance, arithmetic mean of the two entropies."""
    table = contingency(labels_true, labels_pred)
    trivial = _trivial(table)
    if trivial is not None:
        return trivial
    if 1 in table.shape:
        return 0.0
    mi, emi = mutual_information(table), expected_mutual_information(table)
    normalizer = (_entropy(table.sum(axis=1)) + _entropy(table.sum(axis=0))) / 2
    denominator = normalizer - emi
    denominator = min(denominator, -_EPS) if denominator < 0 else max(denominator, _EPS)
    numerator = mi - emi
    numerator = min(numerator, -_EPS) if numerator < 0 else max(numerator, _EPS)
    return numerator / denominator
