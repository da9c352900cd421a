"""The ``classic`` step: cells that train no network.

* ``probe``: logistic regression on frozen embeddings (from an ``embed`` step) of any
  encoder, base or inter-trained: the strong baseline a fine-tune must beat;
* ``nb`` and ``svm``: multinomial Naive Bayes and a linear SVM over the stemmed
  bag-of-words (paper, Appendix B); the vocabulary comes from the unlabeled train texts;
* ``clusters``: the cluster-only classifier (Appendix B): the budget is spread over the
  clusters by size, each cluster takes the majority label of its sample, and a test text
  takes the label of its nearest cluster (the sIB sense: the centroid term distribution
  under which its words are most likely).
"""

from __future__ import annotations

import time

import numpy as np

from jobs.cells import load_cell_data, read_assignments, write_cell
from jobs.embed import from_npy
from jobs.step import JobError, StepContext
from jobs.textfeatures import StemmedBagOfWords

METHODS = ("probe", "nb", "svm", "clusters")


def _probe(ctx: StepContext, sample: np.ndarray, y: list[int]):
    from sklearn.linear_model import LogisticRegression

    prefix = ctx.input("embeddings")
    train = from_npy(ctx.store.read_bytes(f"{prefix}/train.npy"))
    test = from_npy(ctx.store.read_bytes(f"{prefix}/test.npy"))
    clf = LogisticRegression(C=float(ctx.params.get("C", 1.0)), max_iter=2000)
    clf.fit(train[sample], y)
    return clf.predict(test)


def _bow(ctx: StepContext, data, method: str):
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.svm import LinearSVC

    bow = StemmedBagOfWords(max_features=int(ctx.params.get("max_features", 10000)))
    train = bow.fit_transform(data.train.texts)
    test = bow.transform(data.test.texts)
    clf = MultinomialNB() if method == "nb" else LinearSVC(C=float(ctx.params.get("C", 1.0)))
    clf.fit(train[data.sample], data.sample_labels)
    return clf.predict(test)


def _cluster_only(ctx: StepContext, data):
    assignments = np.asarray(read_assignments(ctx))[:len(data.train)]  # the corpus starts with train
    k = int(assignments.max()) + 1
    bow = StemmedBagOfWords(max_features=int(ctx.params.get("max_features", 10000)))
    train = bow.fit_transform(data.train.texts)
    test = bow.transform(data.test.texts)
    centroids = np.vstack([np.asarray(train[assignments == c].sum(axis=0)).ravel() + 1e-3 for c in range(k)])
    log_p = np.log(centroids / centroids.sum(axis=1, keepdims=True))
    nearest = np.asarray(test @ log_p.T).argmax(axis=1)
    fallback = np.bincount(data.sample_labels).argmax()
    cluster_label = np.full(k, fallback)
    for c in range(k):
        in_c = [y for i, y in zip(data.sample, data.sample_labels) if assignments[i] == c]
        if in_c:
            cluster_label[c] = np.bincount(in_c).argmax()
    return cluster_label[nearest]


def run(ctx: StepContext) -> dict:
    method = ctx.params.get("method")
    if method not in METHODS:
        raise JobError(f"unknown classic method {method!r} (known: {', '.join(METHODS)})")
    data = load_cell_data(ctx)
    t0 = time.time()
    if len(set(data.sample_labels)) < 2:
        # one class in the sample: every classifier predicts it
        pred = np.full(len(data.test), data.sample_labels[0])
    elif method == "probe":
        pred = _probe(ctx, data.sample, data.sample_labels)
    elif method == "clusters":
        pred = _cluster_only(ctx, data)
    else:
        pred = _bow(ctx, data, method)
    timings = {"train_s": round(time.time() - t0, 3), "eval_s": 0.0}
    ctx.extra["timings"] = timings
    metrics = write_cell(ctx, data, [int(p) for p in pred], {"method": method, **timings})
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
