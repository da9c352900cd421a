"""A linear probe kept beside its encoder: the classifier of ``ctune train``'s probe settings.

The model folder holds the (inter-trained) encoder, which plain ``transformers`` loads with
``AutoModel``, and ``probe_head.json``: a logistic regression on the encoder's mean-pooled
last-layer embeddings, written as softmax weights so that applying it needs nothing but a
matrix product: ``probs = softmax(embeddings @ weight.T + bias)`` (the same probabilities
scikit-learn's ``predict_proba`` gives). For ``clust+concat`` the head's ``beside`` names a
subfolder holding a second encoder (the pretrained one); the embeddings are then the folder's
encoder's followed by that one's, concatenated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jobs.contract.errors import JobError
from jobs.contract.outputs import PROBE_HEAD
from jobs.lib.probabilities import softmax

POOLING = "mean"
BESIDE = "base"
"""The subfolder of the second encoder of a concatenated probe."""


def fit_head(embeddings: np.ndarray, labels: list[int], names: list[str], max_length: int, C: float = 1.0,
             beside: str | None = None) -> dict:
    """The logistic regression the grid's ``probe`` cells fit (same options), as softmax weights;
    ``beside``: the subfolder of the encoder whose embeddings follow the folder's own."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=2000).fit(embeddings, labels)
    if list(clf.classes_) != list(range(len(names))):
        raise JobError("every label of labels.json needs at least one labeled example")
    weight, bias = clf.coef_, clf.intercept_
    if len(names) == 2:  # sklearn keeps one row for two classes: sigmoid(z) = softmax([0, z])
        weight = np.vstack([np.zeros_like(weight[0]), weight[0]])
        bias = np.array([0.0, bias[0]])
    return {"pooling": POOLING, "max_length": max_length, "labels": list(names),
            "weight": np.asarray(weight, dtype=float).tolist(), "bias": np.asarray(bias, dtype=float).tolist(),
            "C": C, **({"beside": beside} if beside else {})}


def write_head(head: dict, folder: Path) -> None:
    (folder / PROBE_HEAD).write_text(json.dumps(head) + "\n", encoding="utf-8")


def read_head(folder: Path) -> dict | None:
    """The folder's probe head, None when it has none; a head that cannot be applied raises."""
    path = folder / PROBE_HEAD
    if not path.is_file():
        return None
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
        weight, bias, labels = np.asarray(head["weight"], float), np.asarray(head["bias"], float), head["labels"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise JobError(f"{path}: not a probe head (weight, bias, labels)") from None
    if weight.ndim != 2 or weight.shape[0] != len(labels) or bias.shape != (len(labels),) or head.get("pooling") != POOLING:
        raise JobError(f"{path}: weight, bias and labels do not agree (or the pooling is not {POOLING!r})")
    beside = head.get("beside")
    if beside is not None and (beside != BESIDE or not (folder / beside / "config.json").is_file()):
        raise JobError(f"{path}: its second encoder {beside!r} is not a model folder beside it")
    return head


def apply_head(head: dict, embeddings: np.ndarray) -> np.ndarray:
    """Class probabilities, one row per embedding."""
    return softmax(embeddings @ np.asarray(head["weight"], float).T + np.asarray(head["bias"], float))
