"""Which pseudo-labeled texts self-training keeps (jobs.lib.selftrain)."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.contract.ids import encode
from jobs.contract.params import FinetuneParams, SelfTrainOptions
from jobs.lib.selftrain import cluster_agreement, pseudo_labels, second_stage

pytestmark = pytest.mark.unit


def probs_for(pred, confidence, n_classes=2):
    out = np.full((len(pred), n_classes), 0.0)
    for i, (k, c) in enumerate(zip(pred, confidence)):
        out[i] = (1 - c) / (n_classes - 1)
        out[i, k] = c
    return out


def test_the_most_confident_share_of_each_class_and_never_a_labeled_text():
    pred = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    conf = [0.9, 0.6, 0.99, 0.7, 0.8, 0.95, 0.55, 0.9, 0.6, 0.85]
    rows, labels = pseudo_labels(probs_for(pred, conf), SelfTrainOptions(share=0.5, agree="none"), np.array([2]))
    # class 0: quota 2 of 4, row 2 is labeled -> rows 0 (0.9) and 3 (0.7); class 1: quota 3 of 6 -> 5, 7, 9
    assert rows.tolist() == [0, 3, 5, 7, 9] and labels.tolist() == [0, 0, 1, 1, 1]


def test_cluster_agreement_drops_texts_their_cluster_calls_otherwise():
    pred = np.array([0, 0, 1, 1, 1, 0])
    clusters = np.array([7, 7, 7, 3, 3, 3])
    assert cluster_agreement(pred, clusters).tolist() == [True, True, False, True, True, False]
    cluster = SelfTrainOptions(share=1.0, agree="cluster")
    rows, _ = pseudo_labels(probs_for(pred, [0.9] * 6), cluster, np.array([], dtype=int), clusters)
    assert rows.tolist() == [0, 1, 3, 4]
    with pytest.raises(ValueError, match="cluster ids"):
        pseudo_labels(probs_for(pred, [0.9] * 6), cluster, np.array([0]))


def test_the_second_fine_tune_keeps_the_protocol_but_its_passes():
    p = FinetuneParams(model="m", budget=64, repetition=1, lr=5e-5, batch_size=16,
                       self_training=SelfTrainOptions(share=0.3, agree="cluster", epochs=2))
    second = second_stage(p)
    assert (second.epochs, second.lr, second.batch_size, second.repetition) == (2, 5e-5, 16, 1)
    assert encode(p) == {**encode(FinetuneParams(model="m", budget=64, repetition=1, lr=5e-5, batch_size=16)),
                         "pseudo_share": 0.3, "pseudo_agree": "cluster", "pseudo_epochs": 2}
    assert FinetuneParams(model="m", budget=64, repetition=1).self_training is None
    assert "pseudo_share" not in encode(FinetuneParams(model="m", budget=64, repetition=1))  # old ids stay
