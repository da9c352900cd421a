"""NED and its permutation test, the advice rule, and both in a tiny grid's report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.advice import advise, judge, sample_agreement
from jobs.lib.ned import ned, ned_permutation_test, pairwise_distances
from tests.test_pipeline import ctune, read_results


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


def test_every_setting_runs_with_advice_and_embedding_analysis(write_spec, tmp_path):
    from controller.settings import SETTINGS

    spec = write_spec(settings=list(SETTINGS), protocols=["paper", "strong"], repetitions=1,
                      mlm={"epochs": 1, "replication": 1, "batch_size": 32, "max_length": 32},
                      strong={"epochs": 2, "batch_size": 8, "max_length": 32},
                      analysis={"enabled": True, "max_texts": 40, "permutations": 50})
    result = ctune("run", str(spec), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    store = tmp_path / "store"
    report = store / "experiments/tiny/report"
    rows = read_results(report / "results.csv")
    fine_tunes = [s for s in SETTINGS.values() if s.method == "finetune"]
    assert len(rows) == 2 * len(fine_tunes) + len(SETTINGS) - len(fine_tunes)
    assert {r["setting"] for r in rows} == set(SETTINGS)
    # every setting saw the same labeled sample (the cluster-only classifier draws its own)
    samples = {r["setting"]: (store / "steps" / ("classic" if r["setting"] in ("probe", "clust+probe", "nb", "svm",
                                                                              "clusters") else "finetune")
                              / r["step"] / "sample.json").read_text() for r in rows}
    assert len({v for k, v in samples.items() if k != "clusters"}) == 1
    assert all(r["sample_ami"] != "" and r["advice"] in ("bert", "clust") for r in rows)
    assert "Advice (inter-train when" in result.stdout and "bert vs clust" in result.stdout
    # MLM: 240 texts / batch 32 = 8 optimizer steps per epoch; the probes read two encoders' embeddings
    trained = [json.loads(p.read_text()) for p in store.glob("steps/intertrain/*/train.json")]
    assert next(t for t in trained if t["setting"] == "mlm")["optimizer_steps"] == 8
    embeddings = sorted(store.glob("steps/embed/*/train.npy"))
    import numpy as np

    base, inter = (np.load(p) for p in embeddings)
    assert len(embeddings) == 2 and base.shape == inter.shape == (240, 32) and not np.allclose(base, inter)
    neds = [json.loads(p.read_text()) for p in store.glob("steps/analyze/*/ned.json")]
    assert sorted(n["inter_training"] for n in neds) == ["clust", "mlm", "mlm+clust"]
    assert all(n["n_texts"] == 40 and n["permutations"] == 50 and 0 < n["p_value"] <= 1 for n in neds)
    assert "Embedding analysis" in result.stdout
    for start in ("mlm", "clust", "mlm+clust"):
        assert (report / f"tsne-ag_news-{start}.png").read_bytes()[:4] == b"\x89PNG"


def test_only_runs_the_chosen_kinds(write_spec, tmp_path):
    spec = write_spec(settings=["bert", "clust"], repetitions=1)
    result = ctune("run", str(spec), "--only", "cluster")
    assert result.returncode == 0, result.stderr
    kinds = {p.parent.parent.name for p in (tmp_path / "store").glob("steps/*/*/_SUCCESS")}
    assert kinds == {"cluster"} and "not done yet" in result.stdout
    bad = ctune("run", str(spec), "--only", "clustr")
    assert bad.returncode == 2 and "unknown step kind(s) clustr" in bad.stderr


def test_advice_summary_counts_points_lost():
    from controller.advice import format_advice

    rows = [{"dataset": "d", "budget": 64, "repetition": 0, "sampling": "random", "protocol": "strong",
             "setting": s, "accuracy": acc, "sample_ami": 0.0} for s, acc in (("bert", 0.50), ("clust", 0.60))]
    text = "\n".join(format_advice(judge(rows, threshold=0.1)))
    assert "in 0 of 1 comparisons" in text
    assert "following the advice 10.00, always inter-training 0.00, never 10.00" in text
