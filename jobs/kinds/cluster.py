"""The ``cluster`` step: cluster the corpus (the train texts, then any extra unlabeled texts).

``sib`` (the paper's): sequential Information Bottleneck over the stemmed bag-of-words.
``kmeans`` / ``hartigan``: k-means or Hartigan's k-means over dense vectors: the encoder's
mean-pooled embeddings (an ``embeddings`` input) or averaged GloVe vectors (``glove``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from jobs.contract.errors import JobError
from jobs.contract.inputs import DATASET, EMBEDDINGS
from jobs.contract.outputs import ASSIGNMENTS, CLUSTERS, read_embeddings
from jobs.contract.params import ClusterParams, clustering_problem
from jobs.contract.staging import TRAIN, read_split
from jobs.lib.runner import StepContext
from jobs.lib.textfeatures import StemmedBagOfWords, top_terms
from jobs.lib.vectors import glove_average, hartigan_kmeans, lloyd_kmeans

log = logging.getLogger(__name__)


def cluster_counts(counts, params: ClusterParams) -> tuple[np.ndarray, float]:
    """sIB over a term-count matrix; returns labels and the algorithm's score."""
    from sib import SIB

    threads = int(os.environ.get("CTUNE_THREADS", "0")) or -1
    model = SIB(n_clusters=params.n_clusters, n_init=params.n_init, max_iter=params.max_iter,
                tol=params.tol, random_state=params.seed, n_jobs=threads)
    model.fit(counts)
    return np.asarray(model.labels_, dtype=int), float(model.score_)


def dense_vectors(ctx: StepContext[ClusterParams], texts: Sequence[str]) -> np.ndarray:
    if ctx.params.embedding == "glove":
        return glove_average(texts, str(ctx.params.glove))
    vectors = read_embeddings(ctx.store, ctx.input(EMBEDDINGS), TRAIN)
    if len(vectors) != len(texts):
        raise JobError(f"{len(vectors)} embeddings for {len(texts)} corpus texts")
    return vectors


def _cluster(ctx: StepContext[ClusterParams], texts: Sequence[str], counts) -> tuple[np.ndarray, float]:
    p = ctx.params
    if p.method == "sib":
        return cluster_counts(counts, p)
    algorithm = lloyd_kmeans if p.method == "kmeans" else hartigan_kmeans
    labels, sse = algorithm(dense_vectors(ctx, texts), p.n_clusters, p.n_init, p.max_iter, p.seed)
    return labels, -sse


def run(ctx: StepContext[ClusterParams]) -> dict:
    train = read_split(ctx.store, ctx.input(DATASET), TRAIN)
    k = ctx.params.n_clusters
    problem = clustering_problem(len(train), k)
    if problem:
        raise JobError(problem)
    t0 = time.time()
    ctx.progress("stemmed bag of words", "texts")
    bow = StemmedBagOfWords(max_features=ctx.params.max_features)
    try:
        counts = bow.fit_transform(train.texts)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    empty = int((np.asarray(counts.sum(axis=1)).ravel() == 0).sum())
    t1 = time.time()
    ctx.progress(f"{ctx.params.method} clustering, {ctx.params.n_init} restarts", "restarts")
    labels, score = _cluster(ctx, train.texts, counts)
    t2 = time.time()
    sizes = np.bincount(labels, minlength=k).tolist()
    nmi = None
    gold = [i for i, y in enumerate(train.labels) if y is not None]  # a corpus adds unlabeled texts
    if gold:
        nmi = float(normalized_mutual_info_score([train.labels[i] for i in gold], labels[gold]))
    ctx.timings.update(features_s=round(t1 - t0, 3), clustering_s=round(t2 - t1, 3))
    ctx.put_json(ASSIGNMENTS, {"labels": labels.tolist()})
    summary = {
        "n_texts": len(train),
        "n_clusters": k,
        "method": ctx.params.method,
        "vocabulary_size": len(bow.vocabulary_),
        "texts_without_terms": empty,
        "score": score,
        "nmi_with_gold": nmi,
        "sizes": sizes,
        "top_terms": {str(c): terms for c, terms in top_terms(counts, labels, bow.vocabulary_).items()},
    }
    ctx.put_json(CLUSTERS, summary)
    log.info("clustered %d texts into %d clusters (NMI with gold %s)", len(train), k, nmi)
    return {"nmi_with_gold": nmi, "sizes": sizes}
