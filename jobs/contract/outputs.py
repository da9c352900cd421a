"""What each step kind writes beside its ``step.json``, and readers for what the controller reads.

A job must write every required output of its kind before it commits (``jobs.lib.runner``
checks), so a committed step always has them.
"""

from __future__ import annotations

import io
import json

import numpy as np

from jobs.contract.integrity import CorruptArtifact
from jobs.storage import Store

ASSIGNMENTS = "assignments.json"
"""cluster: ``{"labels": [cluster id of each corpus text, in corpus order]}``."""
CLUSTERS = "clusters.json"
"""cluster: sizes, NMI with the gold labels where there are any, top stems per cluster."""
MODEL = "model"
"""intertrain (encoder, head dropped) and fit (classifier): a folder ``transformers`` loads."""
TRAIN_SUMMARY = "train.json"
"""intertrain: optimizer steps, loss, speed."""
FIT_SUMMARY = "fit.json"
"""fit: optimizer steps, labels."""
PROBE_HEAD = "probe_head.json"
"""Beside a ``fit`` model trained with ``head: probe``: the logistic regression on the encoder's
mean-pooled embeddings (``jobs.lib.probe_head``)."""
EMBEDDINGS = "{split}.npy"
TRAIN_EMBEDDINGS = EMBEDDINGS.format(split="train")
"""embed: float32 rows in the order of the dataset's split (``test.npy`` too when it has one)."""
SAMPLE = "sample.json"
"""finetune, classic, setfit: ``{"indices": [...]}`` of the labeled sample in the train split."""
PREDICTIONS = "predictions.jsonl"
DEV_LABELS = "dev_labels.json"
"""An ``evaluate`` step's labels for the dev texts, in order (``{"labels": [...]}``)."""
EXPORT = "export.json"
"""export: the check of the ONNX graph against the torch path on the dev set (agreement, largest
probability difference), and both graphs' labels and probabilities for the dev texts."""
SERVING = "onnx"
"""export: the ONNX folder (``jobs.serving``: graph, int8 graph, tokenizer, labels)."""
DRIFT = "drift.json"
"""drift: what changed since the version in use (emerging clusters, label shift, dev coverage)."""
TO_LABEL = "to_label.jsonl"
"""drift: the texts to label next, in the labeled files' format (``label`` empty)."""
METRICS = "metrics.json"
"""finetune, classic, setfit: accuracy, macro-F1, per-class scores, timings."""
NED = "ned.json"
TSNE = "tsne.png"
"""analyze: NED before/after and its permutation test; the t-SNE picture (optional)."""

CELL = (SAMPLE, PREDICTIONS, METRICS)
"""What every result cell writes (``jobs.lib.cells.write_cell``)."""


def _json(store: Store, prefix: str, name: str) -> dict:
    key = f"{prefix}/{name}"
    try:
        value = json.loads(store.read_bytes(key))
    except (ValueError, UnicodeDecodeError):
        raise CorruptArtifact(f"{key}: not valid JSON (corrupted? `ctune verify` finds and redoes such steps)") from None
    if not isinstance(value, dict):
        raise CorruptArtifact(f"{key}: expected a JSON object")
    return value


def read_cluster_ids(store: Store, cluster_prefix: str) -> list[int]:
    """The cluster id of every corpus text, as a ``cluster`` step wrote them."""
    labels: list[int] = _json(store, cluster_prefix, ASSIGNMENTS)["labels"]
    return labels


def read_cluster_summary(store: Store, cluster_prefix: str) -> dict:
    return _json(store, cluster_prefix, CLUSTERS)


def read_metrics(store: Store, cell_prefix: str) -> dict:
    return _json(store, cell_prefix, METRICS)


def read_sample(store: Store, cell_prefix: str) -> list[int]:
    indices: list[int] = _json(store, cell_prefix, SAMPLE)["indices"]
    return indices


def read_ned(store: Store, analyze_prefix: str) -> dict:
    return _json(store, analyze_prefix, NED)


def npy_bytes(array: np.ndarray) -> bytes:
    """Embeddings as an embed step stores them (float32, no pickles)."""
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def read_embeddings(store: Store, embed_prefix: str, split: str) -> np.ndarray:
    data = store.read_bytes(f"{embed_prefix}/{EMBEDDINGS.format(split=split)}")
    array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    return array
