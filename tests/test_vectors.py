"""Dense-vector clustering (Lloyd and Hartigan k-means) and averaged GloVe vectors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from jobs.contract.errors import JobError
from jobs.lib.vectors import glove_average, hartigan_kmeans, lloyd_kmeans

pytestmark = pytest.mark.unit


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, 8)) * 10
    truth = np.repeat(np.arange(4), 30)
    return centers[truth] + rng.normal(size=(120, 8)), truth


@pytest.mark.parametrize("algorithm", [lloyd_kmeans, hartigan_kmeans])
def test_separated_blobs_are_recovered(algorithm):
    x, truth = blobs()
    labels, sse = algorithm(x, 4, n_init=3, max_iter=20, seed=0)
    assert normalized_mutual_info_score(truth, labels) == pytest.approx(1.0)
    assert sse > 0


def test_hartigan_never_ends_worse_than_its_start_and_keeps_clusters_nonempty():
    x, _ = blobs(1)
    labels, sse = hartigan_kmeans(x, 10, n_init=1, max_iter=5, seed=3)
    assert len(set(labels.tolist())) == 10
    centers = np.vstack([x[labels == c].mean(axis=0) for c in range(10)])
    assert sse == pytest.approx(((x - centers[labels]) ** 2).sum())


def test_glove_average(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("goal 1 0\nmarket 0 1\nteam 1 2\n")
    vectors = glove_average(["Goal! team", "the market", "nothing known"], path)
    assert vectors.tolist() == [[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    with pytest.raises(JobError, match="does not exist"):
        glove_average(["x"], tmp_path / "absent.txt")
    path.write_text("goal 1 0\nmarket 0\n")
    with pytest.raises(JobError, match=r"glove.txt:2: 1 numbers, expected 2"):
        glove_average(["goal market"], path)
