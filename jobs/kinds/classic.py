"""The ``classic`` step: cells that train no network.

* ``probe``: logistic regression on frozen embeddings (from an ``embed`` step) of any
  encoder, base or inter-trained: the strong baseline a fine-tune must beat; with a
  ``beside`` input, on two encoders' embeddings concatenated (``clust+concat``); with
  self-training (``clust+concat+self``), fitted again with the train texts it labels most
  confidently (the embeddings of every train text are there already);
* ``nb`` and ``svm``: multinomial Naive Bayes and a linear SVM over the stemmed
  bag-of-words (paper, Appendix B); the vocabulary comes from the unlabeled train texts;
* ``clusters``: the cluster-only classifier (Appendix B): the budget is spread over the
  clusters by size, each cluster takes the majority label of its sample, and a test text
  takes the label of its nearest cluster (the sIB sense: the centroid term distribution
  under which its words are most likely).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from jobs.contract.inputs import BESIDE, EMBEDDINGS
from jobs.contract.outputs import read_embeddings
from jobs.contract.params import ClassicParams
from jobs.contract.staging import TEST, TRAIN
from jobs.lib.cells import CellData, load_cell_data, train_cluster_ids, write_cell
from jobs.lib.runner import StepContext
from jobs.lib.selftrain import kept_accuracy, pseudo_labels
from jobs.lib.textfeatures import StemmedBagOfWords

log = logging.getLogger(__name__)


def _probe(ctx: StepContext[ClassicParams], data: CellData):
    from sklearn.linear_model import LogisticRegression

    # BESIDE: a second encoder's embeddings (clust+concat), side by side with the first's
    prefixes = [ctx.input(EMBEDDINGS), *([ctx.input(BESIDE)] if ctx.has_input(BESIDE) else [])]
    train = np.hstack([read_embeddings(ctx.store, p, TRAIN) for p in prefixes])
    test = np.hstack([read_embeddings(ctx.store, p, TEST) for p in prefixes])
    clf = LogisticRegression(C=ctx.params.C, max_iter=2000)
    clf.fit(train[data.sample], data.sample_labels)
    options = ctx.params.self_training
    if options is None:
        return clf.predict(test), {}
    # self-training: the regression labels every other train text, keeps the confident ones,
    # and is fitted again on the sample and those
    clusters = np.asarray(train_cluster_ids(ctx, len(data.train))) if options.agree == "cluster" else None
    rows, columns = pseudo_labels(clf.predict_proba(train), options, data.sample, clusters)
    labels = clf.classes_[columns]  # a class missing from the sample has no column
    log.info("self-training: %d pseudo-labeled train texts kept of %d", len(rows), len(train))
    union = np.concatenate([data.sample, rows])
    clf = LogisticRegression(C=ctx.params.C, max_iter=2000).fit(train[union], [*data.sample_labels, *labels])
    return clf.predict(test), {"pseudo_labeled": len(rows), **kept_accuracy(rows, labels, data.train.labels,
                                                                             data.names)}


def _bow(ctx: StepContext[ClassicParams], data: CellData):
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.svm import LinearSVC

    bow = StemmedBagOfWords(max_features=ctx.params.max_features)
    train = bow.fit_transform(data.train.texts)
    test = bow.transform(data.test.texts)
    clf = MultinomialNB() if ctx.params.method == "nb" else LinearSVC(C=ctx.params.C)
    clf.fit(train[data.sample], data.sample_labels)
    return clf.predict(test), {}


def _cluster_only(ctx: StepContext[ClassicParams], data: CellData):
    assignments = np.asarray(train_cluster_ids(ctx, len(data.train)))
    k = int(assignments.max()) + 1
    bow = StemmedBagOfWords(max_features=ctx.params.max_features)
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
    return cluster_label[nearest], {}


METHODS = {"probe": _probe, "nb": _bow, "svm": _bow, "clusters": _cluster_only}


def run(ctx: StepContext[ClassicParams]) -> dict:
    data = load_cell_data(ctx)
    t0 = time.time()
    extra: dict = {}
    if len(set(data.sample_labels)) < 2:
        # one class in the sample: every classifier predicts it
        pred = np.full(len(data.test), data.sample_labels[0])
    else:
        pred, extra = METHODS[ctx.params.method](ctx, data)
    ctx.timings.update(train_s=round(time.time() - t0, 3), eval_s=0.0)
    metrics = write_cell(ctx, data, [int(p) for p in pred], {"method": ctx.params.method, **extra, **ctx.timings})
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
