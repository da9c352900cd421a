"""NED and its permutation test; the advice rule and how it is judged."""

from __future__ import annotations

import numpy as np
import pytest

from controller.analysis.advice import advise, format_advice, judge, sample_agreement
from jobs.lib.ned import ned, ned_permutation_test, pairwise_distances

pytestmark = pytest.mark.unit


def test_ned_on_a_hand_computed_example():
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    d = pairwise_distances(x)
    # same-class pairs (0,1), (2,3): distance 1; all 6 pairs: 1, 10, 11, 9, 10, 1 -> mean 42/6 = 7
    assert ned(d, ["a", "a", "b", "b"]) == pytest.approx(1 / 7)
    assert ned(d, ["a", "b", "a", "b"]) == pytest.approx(10 / 7)


def _blobs(n: int, spread: float, rng) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(4), n // 4)
    centers = rng.normal(size=(4, 16)) * 3
    return centers[labels] * spread + rng.normal(size=(n, 16)), labels


def test_permutation_test_finds_a_real_drop_and_not_a_fake_one():
    rng = np.random.default_rng(0)
    mixed, labels = _blobs(120, 0.0, rng)  # classes not separated
    separated = mixed + np.eye(4, 16)[labels] * 6  # the same texts, classes pulled apart
    real = ned_permutation_test(mixed, separated, labels, permutations=200, seed=1)
    assert real.after < real.before and real.p_value < 0.01
    other = mixed + rng.normal(size=mixed.shape) * 0.1  # a change unrelated to the classes
    fake = ned_permutation_test(mixed, other, labels, permutations=200, seed=1)
    assert fake.p_value > 0.05
    assert real.as_dict()["permutations"] == 200 and real.n_texts == 120


def test_permutation_test_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same texts"):
        ned_permutation_test(np.zeros((5, 2)), np.zeros((4, 2)), [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="two classes"):
        ned_permutation_test(np.zeros((4, 2)), np.zeros((4, 2)), [0, 0, 0, 0])


def test_sample_agreement_is_near_zero_by_chance_and_high_when_clusters_follow_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=64)
    unrelated = rng.integers(0, 50, size=64)  # 64 texts over 50 clusters: plain NMI is high anyway
    assert abs(sample_agreement(unrelated, labels)) < 0.05
    following = labels * 10 + rng.integers(0, 3, size=64)  # each cluster inside one label
    assert sample_agreement(following, labels) > 0.3
    assert advise(sample_agreement(following, labels)) == "clust"
    assert advise(sample_agreement(unrelated, labels), threshold=0.05) == "bert"


def test_judge_pairs_cells_of_the_same_sample():
    rows = [{"dataset": "d", "budget": 64, "repetition": r, "sampling": "random", "protocol": "strong",
             "setting": s, "accuracy": acc, "sample_ami": ami}
            for r, ami in ((0, 0.2), (1, 0.0)) for s, acc in (("bert", 0.5), ("clust", 0.6))]
    js = judge(rows, threshold=0.1)
    assert [(j.repetition, j.advice, j.better, j.match) for j in js] == [
        (0, "clust", "clust", True), (1, "bert", "clust", False)]


def test_advice_summary_counts_points_lost():
    rows = [{"dataset": "d", "budget": 64, "repetition": 0, "sampling": "random", "protocol": "strong",
             "setting": s, "accuracy": acc, "sample_ami": 0.0} for s, acc in (("bert", 0.50), ("clust", 0.60))]
    text = "\n".join(format_advice(judge(rows, threshold=0.1)))
    assert "in 0 of 1 comparisons" in text
    assert "following the advice 10.00, always inter-training 0.00, never 10.00" in text
