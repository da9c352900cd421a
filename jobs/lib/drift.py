"""What changed in a corpus between two retraining rounds, and which texts to label next.
Pure functions over arrays (the ``drift`` step, ``jobs.kinds.drift``, reads and writes).

* Emerging topics: a cluster whose share of texts new since the version in use is above the
  corpus' share of new texts, by a one-sided binomial test at ``alpha`` over all clusters
  together (Bonferroni), and at least 1.5 times that share (or half its texts). With the same
  mix of old and new texts in every cluster, the chance that any cluster is flagged is at most
  ``alpha``.
* Label shift: the version in use's predicted labels on new texts against old ones, a
  chi-square test of homogeneity, and the labels whose share moved most.
* Dev coverage: dev texts placed among the clusters (the multinomial likelihood of a text's
  stems under each cluster's stem distribution, what sIB's clusters are); the share of new texts
  in clusters that hold fewer than ``min_dev`` dev texts.
* The batch to label: texts where the new and the current versions disagree, then the least
  confident, spread over the clusters by size with extra weight on emerging ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from jobs.contract.texts import digests


def is_new(texts: Sequence[str], previous: np.ndarray | None) -> np.ndarray:
    """Which texts the previous round's corpus did not hold (all of them when there is none)."""
    if previous is None:
        return np.ones(len(texts), dtype=bool)
    return ~np.isin(digests(texts), previous)


EFFECT = 1.5
"""An emerging cluster's share of new texts is at least this many times the corpus' (or half
its texts): with many texts a cluster a little above the share is significant without being a
new topic (the share rises a little everywhere when an old topic stops getting texts)."""


def emerging_clusters(cluster_ids: np.ndarray, new: np.ndarray, alpha: float) -> list[dict]:
    """Clusters holding more new texts than the corpus' share of new texts explains (one-sided
    binomial test, Bonferroni over the clusters) and at least ``EFFECT`` times that share (or
    half their texts), most significant first."""
    k = int(cluster_ids.max()) + 1 if len(cluster_ids) else 0
    total = np.bincount(cluster_ids, minlength=k)
    fresh = np.bincount(cluster_ids, weights=new.astype(float), minlength=k).astype(int)
    share = float(new.mean()) if len(new) else 0.0
    if share in (0.0, 1.0):
        return []
    found = []
    for c in range(k):
        if total[c] == 0:
            continue
        if fresh[c] / total[c] < min(0.5, EFFECT * share):
            continue
        p = float(stats.binomtest(int(fresh[c]), int(total[c]), share, alternative="greater").pvalue)
        if p * k < alpha:
            found.append({"cluster": c, "texts": int(total[c]), "new": int(fresh[c]),
                          "new_share": round(fresh[c] / total[c], 4), "p": p})
    return sorted(found, key=lambda f: (f["p"], -f["new"]))


def label_shift(old: Sequence[str], new: Sequence[str], names: Sequence[str], alpha: float, top: int = 3) -> dict:
    """The predicted-label distribution on new texts against old ones: a chi-square test of
    homogeneity over the labels either side predicts, and the labels whose share moved most."""
    if not old or not new:
        return {"old_texts": len(old), "new_texts": len(new), "p": None, "shifted": False, "moved": []}
    table = np.array([[sum(1 for y in side if y == n) for n in names] for side in (old, new)], dtype=float)
    used = table.sum(axis=0) > 0
    p = 1.0
    if used.sum() >= 2:
        p = float(stats.chi2_contingency(table[:, used])[1])
    shares = table / table.sum(axis=1, keepdims=True)
    moved = sorted(range(len(names)), key=lambda i: -abs(shares[1, i] - shares[0, i]))[:top]
    return {"old_texts": len(old), "new_texts": len(new), "p": p, "shifted": p < alpha,
            "old": {n: round(float(shares[0, i]), 4) for i, n in enumerate(names)},
            "new": {n: round(float(shares[1, i]), 4) for i, n in enumerate(names)},
            "moved": [{"label": names[i], "old": round(float(shares[0, i]), 4), "new": round(float(shares[1, i]), 4)}
                      for i in moved if shares[1, i] != shares[0, i]]}


def cluster_log_probs(counts: sparse.spmatrix, cluster_ids: np.ndarray, k: int) -> np.ndarray:
    """Each cluster's stem distribution (log, add-one smoothed): (k, vocabulary)."""
    member = sparse.csr_matrix((np.ones(len(cluster_ids)), (cluster_ids, np.arange(len(cluster_ids)))),
                               shape=(k, len(cluster_ids)))
    mass = np.asarray((member @ counts).todense()) + 1.0
    return np.log(mass / mass.sum(axis=1, keepdims=True))


def nearest_clusters(counts: sparse.spmatrix, log_probs: np.ndarray) -> np.ndarray:
    """The cluster under whose stem distribution each text's stems are likeliest; -1 for a
    text without any known stem."""
    scores = np.asarray(counts @ log_probs.T)
    nearest = scores.argmax(axis=1)
    empty = np.asarray(counts.sum(axis=1)).ravel() == 0
    return np.where(empty, -1, nearest)


def dev_coverage(cluster_ids: np.ndarray, new: np.ndarray, dev_ids: np.ndarray, min_dev: int) -> dict:
    """How much of what is new the dev set can see: the new texts in clusters holding fewer
    than ``min_dev`` dev texts."""
    k = int(max(cluster_ids.max(initial=0), dev_ids.max(initial=0))) + 1
    dev_counts = np.bincount(dev_ids[dev_ids >= 0], minlength=k)
    thin = dev_counts < min_dev
    thin_new = int(new[thin[cluster_ids]].sum())
    return {"dev_texts": len(dev_ids), "min_dev": min_dev, "thin_clusters": np.flatnonzero(thin).tolist(),
            "new_in_thin": thin_new, "new_texts": int(new.sum()),
            "new_share_in_thin": round(thin_new / int(new.sum()), 4) if new.sum() else 0.0,
            "dev_per_cluster": dev_counts.tolist()}


@dataclass(frozen=True)
class Candidate:
    index: int
    """In the round's clustered texts."""
    cluster: int
    disagree: bool
    confidence: float
    """The new version's probability of its label."""


def _quotas(sizes: dict[int, float], budget: int, room: dict[int, int]) -> dict[int, int]:
    """``budget`` spread over clusters in proportion to ``sizes`` (largest remainders), never
    more than a cluster's ``room``; what a full cluster cannot take goes to the others."""
    quota = {c: 0 for c in sizes}
    left = budget
    while left > 0:
        open_ = {c: w for c, w in sizes.items() if quota[c] < room[c] and w > 0}
        if not open_:
            break
        total = sum(open_.values())
        shares = {c: left * w / total for c, w in open_.items()}
        capped = [c for c in open_ if int(shares[c]) >= room[c] - quota[c]]
        if capped:  # fill those and share what is left among the others
            for c in capped:
                left -= room[c] - quota[c]
                quota[c] = room[c]
            continue
        for c in open_:
            quota[c] += int(shares[c])
        rest = left - sum(int(shares[c]) for c in open_)
        for c in sorted(open_, key=lambda c: (-(shares[c] - int(shares[c])), c))[:rest]:
            quota[c] += 1
        break
    return quota


def pick_batch(candidates: Sequence[Candidate], budget: int, emerging: set[int], weight: float) -> list[Candidate]:
    """``budget`` texts to label: within each cluster disagreements first, then the least
    confident; across clusters in proportion to their candidates, emerging ones ``weight``
    times more."""
    by_cluster: dict[int, list[Candidate]] = {}
    for cand in candidates:
        by_cluster.setdefault(cand.cluster, []).append(cand)
    sizes = {c: len(v) * (weight if c in emerging else 1.0) for c, v in by_cluster.items()}
    quota = _quotas(sizes, min(budget, len(candidates)), {c: len(v) for c, v in by_cluster.items()})
    picked: list[Candidate] = []
    for cluster, members in by_cluster.items():
        ranked = sorted(members, key=lambda m: (not m.disagree, m.confidence, m.index))
        picked += ranked[:quota[cluster]]
    return sorted(picked, key=lambda m: (not m.disagree, m.confidence, m.index))
