"""A tiny grid of every setting through the real CLI: the report, the advice, the embedding
analysis, and running only some step kinds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.settings import SETTINGS

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
    base, inter = (np.load(p) for p in embeddings)
    assert len(embeddings) == 2 and base.shape == inter.shape == (240, 32) and not np.allclose(base, inter)
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
