"""What a retraining round reports (jobs.lib.drift) and how it bounds its corpus
(controller.practice.corpus): pure functions on made-up data; the step itself runs in
tests/test_rounds.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import sparse

from controller.practice.corpus import CorpusBound, bounded_corpus, corpus_texts
from jobs.contract.texts import digests
from jobs.data import DataError
from jobs.lib import drift

pytestmark = pytest.mark.unit


def _same_mix(rng: np.random.Generator, k: int = 20, size: int = 150, share: float = 0.2):
    ids = np.repeat(np.arange(k), size)
    return ids, rng.random(len(ids)) < share


def test_the_same_mix_of_new_texts_flags_no_cluster_but_an_injected_topic_is_flagged():
    flagged = [len(drift.emerging_clusters(*_same_mix(np.random.default_rng(s)), alpha=0.01)) for s in range(100)]
    assert sum(1 for f in flagged if f) <= 3  # at most alpha = 1% expected over the 100 corpora
    ids, new = _same_mix(np.random.default_rng(0))
    new[ids == 7] = np.random.default_rng(1).random((ids == 7).sum()) < 0.45  # a topic the new texts bring
    found = drift.emerging_clusters(ids, new, alpha=0.01)
    assert [e["cluster"] for e in found] == [7]
    assert found[0]["texts"] == 150 and found[0]["new"] == int(new[ids == 7].sum()) and found[0]["p"] < 0.01 / 20
    assert drift.emerging_clusters(ids, np.zeros(len(ids), bool), 0.01) == []  # nothing new: nothing to test


def test_an_old_topic_that_stops_getting_texts_does_not_make_the_others_emerge():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(10), 5000)
    new = (rng.random(len(ids)) < 0.25) & (ids != 0)  # 25% new everywhere but the topic that died
    share = new.mean()
    p = min(stats_p(new[ids == c], share) for c in range(1, 10))
    assert p * 10 < 0.01  # each other cluster is above the share (22.5%) beyond chance ...
    assert drift.emerging_clusters(ids, new, 0.01) == []  # ... but none holds 1.5 times it


def stats_p(new: np.ndarray, share: float) -> float:
    from scipy import stats

    return float(stats.binomtest(int(new.sum()), len(new), share, alternative="greater").pvalue)


def test_the_label_shift_names_the_labels_that_moved():
    names = ["Business", "Sports", "World"]
    old = ["Business"] * 50 + ["Sports"] * 50 + ["World"] * 50
    same = drift.label_shift(old, ["Business"] * 20 + ["Sports"] * 20 + ["World"] * 20, names, 0.01)
    assert not same["shifted"] and same["p"] > 0.5
    moved = drift.label_shift(old, ["Business"] * 45 + ["Sports"] * 5 + ["World"] * 10, names, 0.01)
    assert moved["shifted"] and moved["p"] < 1e-6
    assert moved["moved"][0]["label"] == "Business" and moved["moved"][0]["new"] == 0.75
    assert moved["old"]["Sports"] == pytest.approx(1 / 3, abs=1e-4)
    assert drift.label_shift([], ["World"], names, 0.01)["p"] is None


def test_dev_texts_are_placed_in_the_cluster_whose_stems_they_share():
    # stems 0-2 belong to cluster 0, 3-5 to cluster 1
    corpus = sparse.csr_matrix(np.array([[2, 1, 0, 0, 0, 0], [1, 2, 1, 0, 0, 0], [0, 0, 0, 3, 1, 0],
                                         [0, 0, 0, 1, 1, 2]]))
    log_probs = drift.cluster_log_probs(corpus, np.array([0, 0, 1, 1]), 2)
    dev = sparse.csr_matrix(np.array([[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0], [1, 0, 0, 2, 0, 0]]))
    assert drift.nearest_clusters(dev, log_probs).tolist() == [0, 1, -1, 1]


def test_dev_coverage_is_the_share_of_new_texts_the_dev_set_barely_sees():
    ids = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    new = np.array([0, 1, 0, 0, 1, 1, 1, 0], bool)
    placed = np.array([0] * 6 + [1] * 5 + [2] * 2 + [-1])
    cover = drift.dev_coverage(ids, new, placed, min_dev=5)
    assert cover["thin_clusters"] == [2] and cover["new_in_thin"] == 3 and cover["new_share_in_thin"] == 0.75
    assert cover["dev_per_cluster"] == [6, 5, 2]


def _candidates(clusters: dict[int, int]) -> list[drift.Candidate]:
    out, i = [], 0
    for cluster, n in clusters.items():
        for j in range(n):
            out.append(drift.Candidate(i, cluster, disagree=j % 5 == 0, confidence=1 - j / n))
            i += 1
    return out


def test_the_batch_puts_disagreements_first_and_weighs_emerging_clusters():
    pool = _candidates({0: 100, 1: 100, 2: 100, 3: 10})
    plain = drift.pick_batch(pool, 30, set(), 3.0)
    assert len(plain) == 30 and len({c.index for c in plain}) == 30
    per = {k: sum(c.cluster == k for c in plain) for k in range(4)}
    assert per == {0: 10, 1: 10, 2: 9, 3: 1}  # 9.7, 9.7, 9.7, 1.0: largest remainders
    weighted = drift.pick_batch(pool, 30, {1}, 3.0)
    assert sum(c.cluster == 1 for c in weighted) == 18  # 300 of 610 weighted candidates
    for k in range(4):  # within a cluster: disagreements, then the least confident
        mine = [c for c in weighted if c.cluster == k]
        first = sorted((c for c in pool if c.cluster == k), key=lambda c: (not c.disagree, c.confidence))
        assert {c.index for c in mine} == {c.index for c in first[:len(mine)]}
    assert [c.disagree for c in weighted] == sorted((c.disagree for c in weighted), reverse=True)
    unsure = drift.pick_batch(_candidates({0: 10}), 4, set(), 3.0)  # 2 disagreements, then the least confident
    assert [(c.disagree, round(c.confidence, 1)) for c in unsure] == [(True, 0.5), (True, 1.0), (False, 0.1),
                                                                      (False, 0.2)]
    # a cluster with fewer candidates than its share gives the rest to the others
    few = drift.pick_batch(_candidates({0: 2, 1: 100}), 20, {0}, 10.0)
    assert sum(c.cluster == 0 for c in few) == 2 and len(few) == 20
    assert len(drift.pick_batch(_candidates({0: 3}), 50, set(), 3.0)) == 3


def test_a_bounded_corpus_keeps_a_sample_that_stays_as_the_corpus_grows():
    texts = [f"text number {i}" for i in range(5000)]
    first = bounded_corpus(texts[:4000], CorpusBound(500))
    grown = bounded_corpus(texts, CorpusBound(500))
    assert len(first.texts) == 500 and first.total == 4000 and grown.total == 5000
    assert first.index.tolist() == digests(texts[:4000]).tolist()
    kept = set(grown.texts) & set(first.texts)
    fresh = sum(int(t.split()[-1]) >= 4000 for t in grown.texts)
    assert len(kept) == 500 - fresh  # a text leaves the sample only for a new one
    assert 50 <= fresh <= 150  # new texts enter in proportion (1 in 5)
    positions = [int(t.split()[-1]) for t in grown.texts]
    assert positions == sorted(positions)  # in reading order
    newest = bounded_corpus(texts, CorpusBound(300, "newest"))
    assert list(newest.texts) == texts[-300:]
    assert bounded_corpus(texts, CorpusBound(0)).texts == tuple(texts)
    assert bounded_corpus(texts[:10], CorpusBound(500)).texts == tuple(texts[:10])
    with pytest.raises(DataError, match="no texts"):
        bounded_corpus([], CorpusBound())
    with pytest.raises(DataError, match="--corpus-pick: unknown 'oldest'"):
        CorpusBound(10, "oldest")


def test_a_corpus_is_read_as_a_stream_with_errors_naming_file_and_line(tmp_path):
    good = tmp_path / "c.jsonl"
    good.write_text("\ufeff" + json.dumps({"text": "a b"}) + "\n\n" + json.dumps({"text": "c d", "x": 1}) + "\n")
    stream = corpus_texts(str(good), "text")
    assert next(stream) == "a b" and list(stream) == ["c d"]
    csv_file = tmp_path / "c.csv"
    csv_file.write_text('text,other\n"one, two",1\nthree,2\n')
    assert list(corpus_texts(str(csv_file), "text")) == ["one, two", "three"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "a"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON line"):
        list(corpus_texts(str(bad), "text"))
    with pytest.raises(DataError, match="missing field 'body'"):
        list(corpus_texts(str(good), "body"))
    with pytest.raises(DataError, match="no such file"):
        list(corpus_texts(str(tmp_path / "none.jsonl"), "text"))
