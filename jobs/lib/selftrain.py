"""Self-training: which unlabeled train texts a model labels confidently enough to learn from,
and the second fine-tune on them (the ``self``, ``clust+self`` and ``clust+concat+self``
settings)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jobs.contract.params import FinetuneParams, SelfTrainOptions


def cluster_agreement(pred: np.ndarray, cluster_ids: np.ndarray) -> np.ndarray:
    """Whether each text's prediction is the most frequent prediction of its cluster (ties:
    the lowest class)."""
    out = np.zeros(len(pred), dtype=bool)
    for c in np.unique(cluster_ids):
        members = cluster_ids == c
        majority = np.bincount(pred[members]).argmax()
        out[members] = pred[members] == majority
    return out


def pseudo_labels(probs: np.ndarray, options: SelfTrainOptions, labeled: np.ndarray,
                  cluster_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) to learn from: of the texts predicted as each class, the most confident
    ``share`` (of that class's predictions), never a labeled text, and with ``agree:
    cluster`` only texts whose cluster mostly got the same prediction."""
    pred = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    eligible = np.ones(len(pred), dtype=bool)
    eligible[labeled] = False
    if options.agree == "cluster":
        if cluster_ids is None:
            raise ValueError("agree: cluster needs the texts' cluster ids")
        eligible &= cluster_agreement(pred, np.asarray(cluster_ids))
    rows = []
    for k in np.unique(pred):
        quota = math.ceil(options.share * int((pred == k).sum()))
        candidates = np.flatnonzero(eligible & (pred == k))
        # most confident first; equal confidences by row, so the choice is deterministic
        order = np.lexsort((candidates, -confidence[candidates]))
        rows.append(candidates[order][:quota])
    kept = np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)
    return kept, pred[kept]


def kept_accuracy(rows: np.ndarray, labels: np.ndarray, train_labels: Sequence, names: list[str]) -> dict:
    """How right the kept labels were by the benchmark's gold labels (diagnostics only: a
    cell's metrics, never its choices); nothing when nothing was kept."""
    if not len(rows):
        return {}
    index = {name: i for i, name in enumerate(names)}
    gold = np.asarray([index.get(str(train_labels[i]), -1) for i in rows])
    return {"pseudo_accuracy": float(np.mean(gold == labels))}


def second_stage(params: FinetuneParams) -> FinetuneParams:
    """The options of the fine-tune on labeled + pseudo-labeled texts: the protocol's, with the
    self-training's number of passes."""
    assert params.self_training is not None
    return dataclasses.replace(params, epochs=params.self_training.epochs)
