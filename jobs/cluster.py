"""The ``cluster`` step: cluster the unlabeled train texts.

``sib`` (the paper's): sequential Information Bottleneck over the stemmed bag-of-words.
``kmeans`` / ``hartigan``: k-means or Hartigan's k-means over dense vectors: the encoder's
mean-pooled embeddings (an ``embeddings`` input) or averaged GloVe vectors (``glove``).
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from jobs.datasets import read_split
from jobs.embed import from_npy
from jobs.vectors import glove_average, hartigan_kmeans, lloyd_kmeans
from jobs.step import JobError, StepContext
from jobs.textfeatures import StemmedBagOfWords, top_terms

log = logging.getLogger(__name__)

DEFAULTS = {"method": "sib", "n_clusters": 50, "n_init": 10, "max_iter": 15, "tol": 0.02,
            "max_features": 10000, "seed": 1024}


METHODS = ("sib", "kmeans", "hartigan")


def cluster_counts(counts, params: dict) -> tuple[np.ndarray, float]:
    """sIB over a term-count matrix; returns labels and the algorithm's score."""
    from sib import SIB

    threads = int(os.environ.get("CTUNE_THREADS", "0")) or -1
    model = SIB(n_clusters=params["n_clusters"], n_init=params["n_init"], max_iter=params["max_iter"],
                tol=params["tol"], random_state=params["seed"], n_jobs=threads)
    model.fit(counts)
    return np.asarray(model.labels_, dtype=int), float(model.score_)


def dense_vectors(ctx: StepContext, texts, params: dict) -> np.ndarray:
    if params.get("embedding", "encoder") == "glove":
        return glove_average(texts, params["glove"])
    vectors = from_npy(ctx.store.read_bytes(f"{ctx.input('embeddings')}/train.npy"))
    if len(vectors) != len(texts):
        raise JobError(f"{len(vectors)} embeddings for {len(texts)} train texts")
    return vectors


def run(ctx: StepContext) -> dict:
    params = {**DEFAULTS, **ctx.params}
    train = read_split(ctx.store, ctx.input("dataset"), "train")
    k = params["n_clusters"]
    if len(train) < k:
        raise JobError(f"{len(train)} train texts are fewer than n_clusters={k}")
    t0 = time.time()
    bow = StemmedBagOfWords(max_features=params["max_features"])
    try:
        counts = bow.fit_transform(train.texts)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    empty = int((np.asarray(counts.sum(axis=1)).ravel() == 0).sum())
    t1 = time.time()
    method = params["method"]
    if method == "sib":
        labels, score = cluster_counts(counts, params)
    elif method in ("kmeans", "hartigan"):
        vectors = dense_vectors(ctx, train.texts, params)
        algorithm = lloyd_kmeans if method == "kmeans" else hartigan_kmeans
        labels, sse = algorithm(vectors, k, params["n_init"], params["max_iter"], params["seed"])
        score = -sse
    else:
        raise JobError(f"unknown clustering method {method!r} (known: {', '.join(METHODS)})")
    t2 = time.time()
    sizes = np.bincount(labels, minlength=k).tolist()
    nmi = None
    gold = [i for i, y in enumerate(train.labels) if y is not None]  # a corpus adds unlabeled texts
    if gold:
        nmi = float(normalized_mutual_info_score([train.labels[i] for i in gold], labels[gold]))
    ctx.extra["timings"] = {"features_s": round(t1 - t0, 3), "clustering_s": round(t2 - t1, 3)}
    ctx.put_json("assignments.json", {"labels": labels.tolist()})
    summary = {
        "n_texts": len(train),
        "n_clusters": k,
        "method": method,
        "vocabulary_size": len(bow.vocabulary_),
        "texts_without_terms": empty,
        "score": score,
        "nmi_with_gold": nmi,
        "sizes": sizes,
        "top_terms": {str(c): terms for c, terms in top_terms(counts, labels, bow.vocabulary_).items()},
    }
    ctx.put_json("clusters.json", summary)
    log.info("clustered %d texts into %d clusters (NMI with gold %s)", len(train), k, nmi)
    return {"nmi_with_gold": nmi, "sizes": sizes}
