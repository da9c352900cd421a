"""Clustering dense text vectors: k-means (Lloyd), Hartigan's k-means, averaged GloVe vectors.

The paper's Appendix C compares sIB over bag-of-words with K-means and Hartigan's K-means
over averaged GloVe vectors; here the vectors can also be the encoder's own embeddings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jobs.contract.errors import JobError

_TOKEN = re.compile(r"\w+")


def lloyd_kmeans(x: np.ndarray, k: int, n_init: int, max_iter: int, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=n_init, max_iter=max(max_iter, 1), random_state=seed).fit(x)
    return model.labels_.astype(int), float(model.inertia_)


def _hartigan_once(x: np.ndarray, k: int, max_iter: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    n = len(x)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
    rng.shuffle(labels)
    sizes = np.bincount(labels, minlength=k).astype(float)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    for _ in range(max(max_iter, 1)):
        moved = 0
        for i in rng.permutation(n):
            a = labels[i]
            if sizes[a] <= 1:
                continue
            centers = sums / sizes[:, None]
            d2 = ((centers - x[i]) ** 2).sum(axis=1)
            # SSE change of moving i out of a and into b (Hartigan's exact criterion)
            remove = sizes[a] / (sizes[a] - 1) * d2[a]
            add = sizes / (sizes + 1) * d2
            add[a] = np.inf
            b = int(np.argmin(add))
            if add[b] < remove:
                labels[i] = b
                sizes[a] -= 1
                sizes[b] += 1
                sums[a] -= x[i]
                sums[b] += x[i]
                moved += 1
        if moved == 0:
            break
    centers = sums / sizes[:, None]
    return labels, float(((x - centers[labels]) ** 2).sum())


def hartigan_kmeans(x: np.ndarray, k: int, n_init: int, max_iter: int, seed: int) -> tuple[np.ndarray, float]:
    """Hartigan's k-means: a point moves whenever that lowers the total squared error."""
    if len(x) < k:
        raise JobError(f"{len(x)} texts are fewer than n_clusters={k}")
    rng = np.random.default_rng(seed)
    runs = [_hartigan_once(x.astype(np.float64), k, max_iter, rng) for _ in range(max(n_init, 1))]
    return min(runs, key=lambda run: run[1])  # the first of the best, as before


def glove_average(texts: Sequence[str], path: str | Path) -> np.ndarray:
    """Average GloVe vectors (text format: a word, then its numbers) of each text's tokens."""
    path = Path(path)
    if not path.is_file():
        raise JobError(f"GloVe file {path} does not exist")
    tokenized = [_TOKEN.findall(t.lower()) for t in texts]
    wanted = {w for tokens in tokenized for w in tokens}
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if dim is None:
                dim = len(rest.split())
                if dim == 0:
                    raise JobError(f"{path}:{lineno}: not a GloVe line (a word, then numbers)")
            if word in wanted:
                values = np.array(rest.split(), dtype=np.float32)
                if len(values) != dim:
                    raise JobError(f"{path}:{lineno}: {len(values)} numbers, expected {dim}")
                vectors[word] = values
    if not vectors:
        raise JobError(f"no word of the corpus is in {path}")
    out = np.zeros((len(texts), len(next(iter(vectors.values())))), dtype=np.float32)
    for i, tokens in enumerate(tokenized):
        known = [vectors[w] for w in tokens if w in vectors]
        if known:
            out[i] = np.mean(known, axis=0)
    return out
