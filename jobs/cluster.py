"""The ``cluster`` step: sIB over stemmed bag-of-words of the unlabeled train texts."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from jobs.datasets import read_split
from jobs.step import JobError, StepContext
from jobs.textfeatures import StemmedBagOfWords, top_terms

log = logging.getLogger(__name__)

DEFAULTS = {"method": "sib", "n_clusters": 50, "n_init": 10, "max_iter": 15, "tol": 0.02,
            "max_features": 10000, "seed": 1024}


def cluster_counts(counts, params: dict) -> tuple[np.ndarray, float]:
    """Cluster a term-count matrix; returns labels and the algorithm's score."""
    method = params["method"]
    if method != "sib":
        raise JobError(f"unknown clustering method {method!r} (known: sib)")
    from sib import SIB

    threads = int(os.environ.get("CTUNE_THREADS", "0")) or -1
    model = SIB(n_clusters=params["n_clusters"], n_init=params["n_init"], max_iter=params["max_iter"],
                tol=params["tol"], random_state=params["seed"], n_jobs=threads)
    model.fit(counts)
    return np.asarray(model.labels_, dtype=int), float(model.score_)


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
    labels, score = cluster_counts(counts, params)
    t2 = time.time()
    sizes = np.bincount(labels, minlength=k).tolist()
    nmi = None
    if train.labeled:
        nmi = float(normalized_mutual_info_score(list(train.labels), labels))
    ctx.extra["timings"] = {"features_s": round(t1 - t0, 3), "clustering_s": round(t2 - t1, 3)}
    ctx.put_json("assignments.json", {"labels": labels.tolist()})
    summary = {
        "n_texts": len(train),
        "n_clusters": k,
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
