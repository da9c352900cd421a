"""A tiny grid of every setting through the real CLI: the report, the advice, the embedding
analysis, and running only some step kinds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.plan.settings import SETTINGS

pytestmark = pytest.mark.pipeline


def test_every_setting_runs_with_advice_and_embedding_analysis(write_spec, tmp_path, ctune, results):
    spec = write_spec(settings=list(SETTINGS), protocols=["paper", "strong"], repetitions=1,
                      mlm={"epochs": 1, "replication": 1, "batch_size": 32, "max_length": 32},
                      strong={"epochs": 2, "batch_size": 8, "max_length": 32},
                      analysis={"enabled": True, "max_texts": 40, "permutations": 50})
    result = ctune("run", str(spec), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    store = tmp_path / "store"
    report = store / "experiments/tiny/report"
    rows = results(report / "results.csv")
    fine_tunes = [s for s in SETTINGS.values() if s.fine_tunes]
    assert len(rows) == 2 * len(fine_tunes) + len(SETTINGS) - len(fine_tunes)
    assert {r["setting"] for r in rows} == set(SETTINGS)
    # every setting saw the same labeled sample (the cluster-only classifier draws its own)
    samples = {r["setting"]: (store / "steps" / SETTINGS[r["setting"]].kind / r["step"] / "sample.json").read_text()
               for r in rows}
    assert len({v for k, v in samples.items() if k != "clusters"}) == 1
    assert all(r["sample_ami"] != "" and r["advice"] in ("bert", "clust") for r in rows)
    # self-training learned from pseudo-labeled train texts too, after a first fine-tune
    for r in (r for r in rows if r["setting"] in ("self", "clust+self")):
        m = json.loads((store / "steps/finetune" / r["step"] / "metrics.json").read_text())
        assert 16 < m["pseudo_labeled"] <= 240 - 16 and 0 <= m["pseudo_accuracy"] <= 1
        assert m["optimizer_steps"] > m["first_optimizer_steps"] > 0
    assert "Advice (inter-train when" in result.stdout and "bert vs clust" in result.stdout
    # MLM: 240 texts / batch 32 = 8 optimizer steps per epoch; the probes read two encoders' embeddings
    trained = [json.loads(p.read_text()) for p in store.glob("steps/intertrain/*/train.json")]
    assert next(t for t in trained if t["setting"] == "mlm")["optimizer_steps"] == 8
    embeddings = sorted(store.glob("steps/embed/*/train.npy"))
    base, inter = (np.load(p) for p in embeddings)
    assert len(embeddings) == 2 and base.shape == inter.shape == (240, 32) and not np.allclose(base, inter)
    _check_concat_probe(store, next(r for r in rows if r["setting"] == "clust+concat"))
    _check_self_trained_probe(store, next(r for r in rows if r["setting"] == "clust+concat+self"))
    neds = [json.loads(p.read_text()) for p in store.glob("steps/analyze/*/ned.json")]
    assert sorted(n["inter_training"] for n in neds) == ["clust", "mlm", "mlm+clust"]
    assert all(n["n_texts"] == 40 and n["permutations"] == 50 and 0 < n["p_value"] <= 1 for n in neds)
    assert "Embedding analysis" in result.stdout
    for start in ("mlm", "clust", "mlm+clust"):
        assert (report / f"tsne-ag_news-{start}.png").read_bytes()[:4] == b"\x89PNG"


def test_only_runs_the_chosen_kinds(write_spec, tmp_path, ctune):
    spec = write_spec(settings=["bert", "clust"], repetitions=1)
    result = ctune("run", str(spec), "--only", "cluster")
    assert result.returncode == 0, result.stderr
    kinds = {p.parent.parent.name for p in (tmp_path / "store").glob("steps/*/*/_SUCCESS")}
    assert kinds == {"cluster"} and "not done yet" in result.stdout
    bad = ctune("run", str(spec), "--only", "clustr")
    assert bad.returncode == 2 and "unknown step kind(s) clustr" in bad.stderr


def test_setfit_cells_and_intertraining_seeds(write_spec, tmp_path, ctune, results):
    # GIVEN SetFit beside fine-tuning, and every inter-trained encoder made twice (seeds 0 and 1)
    spec = write_spec(settings=["bert", "clust", "setfit", "clust+setfit"], repetitions=2,
                      intertrain={"batch_size": 32, "max_length": 32, "seeds": 2},
                      setfit={"num_iterations": 2, "batch_size": 8, "max_length": 32})
    result = ctune("run", str(spec))
    assert result.returncode == 0, result.stderr
    store = tmp_path / "store"
    rows = results(store / "experiments/tiny/report/results.csv")
    # THEN cells that start from an inter-trained encoder run on each copy of it
    count = {s: sum(r["setting"] == s for r in rows) for s in ("bert", "clust", "setfit", "clust+setfit")}
    assert count == {"bert": 2, "clust": 4, "setfit": 2, "clust+setfit": 4}
    trained = {json.loads(p.read_text())["params"]["seed"]: p.parent for p in store.glob("steps/intertrain/*/step.json")}
    assert sorted(trained) == [0, 1]
    weights = [(trained[s] / "model/model.safetensors").read_bytes() for s in (0, 1)]
    assert weights[0] != weights[1]
    steps = {r["step"]: json.loads((store / "steps" / SETTINGS[r["setting"]].kind / r["step"] / "step.json").read_text())
             for r in rows}
    for setting in ("clust", "clust+setfit"):
        encoders = {(r["repetition"], r["copy"]): steps[r["step"]]["inputs"]["encoder"] for r in rows
                    if r["setting"] == setting}
        assert {e.rsplit("/", 1)[-1] for e in encoders.values()} == {p.name for p in trained.values()}
        assert encoders[("0", "0")] == encoders[("1", "0")] != encoders[("0", "1")]
    # AND every cell of a repetition learned from the same labeled sample, SetFit's included
    for rep in ("0", "1"):
        samples = {(store / "steps" / SETTINGS[r["setting"]].kind / r["step"] / "sample.json").read_text()
                   for r in rows if r["repetition"] == rep}
        assert len(samples) == 1
    assert all(int(r["optimizer_steps"]) > 0 for r in rows if "setfit" in r["setting"])
    # AND the summary splits the variance of the inter-trained settings' means
    assert "| ag_news | 16 | clust | 2×2 |" in result.stdout and "| ag_news | 16 | clust+setfit | 2×2 |" in result.stdout
    assert "(n=2×2)" in result.stdout
    # AND SetFit is in the paired t-tests, each sample counted once whatever its copies
    assert "Paired t-tests against `bert`" in result.stdout and "| clust+setfit | 16 | 2 |" in result.stdout
    # AND a SetFit cell computed again gives the same predictions (seeded pairs, body and head)
    cell = next(r["step"] for r in rows if r["setting"] == "setfit")
    before = (store / "steps/setfit" / cell / "predictions.jsonl").read_bytes()
    assert ctune("invalidate", str(spec), cell).returncode == 0
    again = ctune("run", str(spec))
    assert again.returncode == 0 and "running 1 of" in again.stderr + again.stdout
    assert (store / "steps/setfit" / cell / "predictions.jsonl").read_bytes() == before


def _check_self_trained_probe(store, row):
    """clust+concat+self: the concatenated probe labels the other train texts, keeps each
    predicted class's most confident 30% (with ``agree: cluster`` only those whose cluster
    agrees; by default, a probe's, by confidence alone), and is fitted again on both."""
    from sklearn.linear_model import LogisticRegression

    cell = store / "steps/classic" / row["step"]
    step = json.loads((cell / "step.json").read_text())
    inputs = step["inputs"]
    assert step["params"]["pseudo_share"] == 0.3 and step["params"]["pseudo_agree"] == "none"
    filtered = step["params"]["pseudo_agree"] == "cluster"
    assert "pseudo_epochs" not in step["params"]
    train, test = (np.hstack([np.load(store / inputs[role] / f"{split}.npy") for role in ("embeddings", "beside")])
                   for split in ("train", "test"))
    names = json.loads((store / inputs["dataset"] / "labels.json").read_text())["labels"]
    labels = [names.index(json.loads(line)["label"])
              for line in (store / inputs["dataset"] / "train.jsonl").read_text().splitlines()]
    clusters = json.loads((store / inputs["clusters"] / "assignments.json").read_text())["labels"][:len(train)]
    sample = json.loads((cell / "sample.json").read_text())["indices"]
    first = LogisticRegression(max_iter=2000).fit(train[sample], [labels[i] for i in sample])
    pred, confidence = first.predict(train), first.predict_proba(train).max(axis=1)
    votes: dict = {}
    for c, p in zip(clusters, pred):
        votes.setdefault(c, []).append(p)
    # a cluster's majority prediction, ties to the lowest class
    majority = {c: min(set(v), key=lambda k: (-v.count(k), k)) for c, v in votes.items()}
    kept = []
    for k in set(pred):
        quota = int(np.ceil(0.3 * (pred == k).sum()))
        pool = [i for i in np.argsort(-confidence, kind="stable")
                if pred[i] == k and (majority[clusters[i]] == k or not filtered) and i not in sample]
        kept += pool[:quota]
    metrics = json.loads((cell / "metrics.json").read_text())
    assert metrics["pseudo_labeled"] == len(kept) > 0 and 0 <= metrics["pseudo_accuracy"] <= 1
    second = LogisticRegression(max_iter=2000).fit(train[[*sample, *sorted(kept)]],
                                                   [labels[i] for i in sample] + [pred[i] for i in sorted(kept)])
    got = [names.index(json.loads(line)["label"]) for line in (cell / "predictions.jsonl").read_text().splitlines()]
    assert got == list(second.predict(test))


def _check_concat_probe(store, row):
    """clust+concat's predictions are a logistic regression on the inter-trained encoder's
    embeddings with the pretrained one's beside them, fitted on the cell's sample."""
    from sklearn.linear_model import LogisticRegression

    cell = store / "steps/classic" / row["step"]
    inputs = json.loads((cell / "step.json").read_text())["inputs"]
    assert "encoder" in json.loads((store / inputs["embeddings"] / "step.json").read_text())["inputs"]
    assert "encoder" not in json.loads((store / inputs["beside"] / "step.json").read_text())["inputs"]
    train, test = ([np.load(store / inputs[role] / f"{split}.npy") for role in ("embeddings", "beside")]
                   for split in ("train", "test"))
    labels = [json.loads(line)["label"] for line in (store / inputs["dataset"] / "train.jsonl").read_text().splitlines()]
    sample = json.loads((cell / "sample.json").read_text())["indices"]
    clf = LogisticRegression(max_iter=2000).fit(np.hstack(train)[sample], [labels[i] for i in sample])
    got = [json.loads(line)["label"] for line in (cell / "predictions.jsonl").read_text().splitlines()]
    assert got == list(clf.predict(np.hstack(test)))
