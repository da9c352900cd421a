"""The linear probe kept beside ``ctune train``'s encoder (jobs.lib.probe_head)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.contract.errors import JobError
from jobs.lib.probe_head import PROBE_HEAD, apply_head, fit_head, read_head, write_head

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("classes", [2, 3])
def test_the_head_gives_scikit_learns_probabilities(classes, tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    y = [i % classes for i in range(60)]
    x[:, 0] += np.array(y)  # separable enough to give confident, non-uniform probabilities
    head = fit_head(x, y, [f"c{i}" for i in range(classes)], max_length=64)
    write_head(head, tmp_path)
    again = read_head(tmp_path)
    assert again is not None and again["labels"] == [f"c{i}" for i in range(classes)]
    test = rng.normal(size=(10, 8))
    expected = LogisticRegression(max_iter=2000).fit(x, y).predict_proba(test)
    np.testing.assert_allclose(apply_head(again, test), expected, atol=1e-6)
    assert np.asarray(again["weight"]).shape == (classes, 8)


def test_a_folder_without_a_head_has_none_and_a_broken_head_is_named(tmp_path):
    assert read_head(tmp_path) is None
    (tmp_path / PROBE_HEAD).write_text("{not json")
    with pytest.raises(JobError, match=r"probe_head\.json: not a probe head"):
        read_head(tmp_path)
    (tmp_path / PROBE_HEAD).write_text(json.dumps({"pooling": "mean", "labels": ["a", "b"],
                                                   "weight": [[0.0, 1.0]], "bias": [0.0, 0.0]}))
    with pytest.raises(JobError, match="do not agree"):
        read_head(tmp_path)


def test_every_label_needs_an_example():
    x = np.eye(4)
    with pytest.raises(JobError, match="at least one labeled example"):
        fit_head(x, [0, 0, 2, 2], ["a", "b", "c"], max_length=64)


def test_a_second_encoder_must_be_a_model_folder_beside_the_head(tmp_path):
    head = fit_head(np.eye(4), [0, 1, 0, 1], ["a", "b"], max_length=64, beside="base")
    write_head(head, tmp_path)
    with pytest.raises(JobError, match=r"second encoder 'base' is not a model folder beside it"):
        read_head(tmp_path)  # base/ is missing
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    assert read_head(tmp_path)["beside"] == "base"
    (tmp_path / PROBE_HEAD).write_text(json.dumps({**head, "beside": "../elsewhere"}))
    with pytest.raises(JobError, match=r"second encoder '\.\./elsewhere'"):
        read_head(tmp_path)  # only the fixed subfolder: a head cannot point out of its folder
