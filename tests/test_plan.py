"""Planning: one clustering per dataset, one inter-training per (dataset, setting),
fine-tunes per cell, ids that change exactly when an input changes."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import REPO

from controller.plan.graph import build_plan
from controller.plan.spec import load_spec, parse_spec
from jobs.contract.ids import encode

pytestmark = pytest.mark.unit

PREFIXES = {"ag_news": "datasets/ag_news-aaaa", "dbpedia": "datasets/dbpedia-bbbb"}


def spec(**overrides):
    return parse_spec({"name": "p", "datasets": ["ag_news", "dbpedia"], "budgets": [64, 128],
                       "repetitions": 3, **overrides})


def kinds(plan):
    out = {}
    for s in plan.steps.values():
        out[s.kind] = out.get(s.kind, 0) + 1
    return out


def test_matrix_expands_to_shared_steps():
    plan = build_plan(spec(), PREFIXES)
    assert kinds(plan) == {"cluster": 2, "intertrain": 2, "finetune": 2 * 2 * 2 * 3}
    assert len(plan.cells) == 24


def test_dependencies_come_first():
    plan = build_plan(spec(), PREFIXES)
    seen = set()
    for sid in plan.steps:
        assert all(d in seen for d in plan.deps(sid))
        seen.add(sid)


def test_settings_share_the_sample_but_not_the_start():
    plan = build_plan(spec(), PREFIXES)
    cells = {(c.dataset, c.setting, c.budget, c.repetition): plan.steps[c.step] for c in plan.cells}
    bert, clust = cells[("ag_news", "bert", 64, 1)], cells[("ag_news", "clust", 64, 1)]
    sample_keys = ("budget", "repetition", "sample_seed")
    assert {k: getattr(bert.params, k) for k in sample_keys} == {k: getattr(clust.params, k) for k in sample_keys}
    assert "encoder" not in bert.inputs and clust.inputs["encoder"].startswith("steps/intertrain/")


def test_ids_are_stable_and_change_with_inputs():
    a = build_plan(spec(), PREFIXES)
    assert list(a.steps) == list(build_plan(spec(), PREFIXES).steps)
    # new data changes every step of that dataset, none of the other
    b = build_plan(spec(), {**PREFIXES, "dbpedia": "datasets/dbpedia-cccc"})
    changed = {s.label.split()[0] for sid, s in a.steps.items() if sid not in b.steps}
    assert changed == {"dbpedia"}
    # a fine-tune argument changes the fine-tunes only
    c = build_plan(spec(finetune={"lr": 5e-5}), PREFIXES)
    assert {s.kind for sid, s in a.steps.items() if sid not in c.steps} == {"finetune"}
    # a clustering argument changes clustering, inter-training and the clust fine-tunes
    d = build_plan(spec(clustering={"n_clusters": 20}), PREFIXES)
    stale = [s for sid, s in a.steps.items() if sid not in d.steps]
    assert {s.kind for s in stale} == {"cluster", "intertrain", "finetune"}
    assert all(" clust " in s.label or s.kind != "finetune" for s in stale)


def test_bert_only_plans_no_clustering():
    plan = build_plan(spec(settings=["bert"]), PREFIXES)
    assert kinds(plan) == {"finetune": 12}


def test_plan_json_lists_steps_and_cells():
    import json

    plan = build_plan(spec(), PREFIXES)
    data = json.loads(plan.to_json())
    assert len(data["steps"]) == len(plan.steps) and len(data["cells"]) == 24
    assert dataclasses.asdict(plan.cells[0]).keys() == data["cells"][0].keys()


def test_probes_share_one_embedding_per_encoder_and_bow_needs_none():
    plan = build_plan(spec(settings=["bert", "probe", "clust+probe", "nb", "svm"]), PREFIXES)
    assert kinds(plan) == {"cluster": 2, "intertrain": 2, "embed": 4, "finetune": 12, "classic": 48}
    by_setting = {}
    for c in plan.cells:
        by_setting.setdefault(c.setting, set()).add(c.kind)
    assert by_setting == {"bert": {"finetune"}, "probe": {"classic"}, "clust+probe": {"classic"},
                          "nb": {"classic"}, "svm": {"classic"}}
    probe = next(plan.steps[c.step] for c in plan.cells if c.setting == "clust+probe")
    embed = plan.steps[probe.inputs["embeddings"].rsplit("/", 1)[1]]
    assert embed.inputs["encoder"].startswith("steps/intertrain/")
    nb = next(plan.steps[c.step] for c in plan.cells if c.setting == "nb")
    assert set(nb.inputs) == {"dataset"} and encode(nb.params)["method"] == "nb"


def test_concat_probe_reads_both_encoders_embeddings_and_shares_them():
    alone = build_plan(spec(settings=["probe", "clust+probe"]), PREFIXES)
    plan = build_plan(spec(settings=["probe", "clust+probe", "clust+concat"]), PREFIXES)
    # no new encoder or embedding: the concatenated probe reads the two the probes already have
    assert kinds(plan) == {**kinds(alone), "classic": kinds(alone)["classic"] + 12}
    assert set(alone.steps) <= set(plan.steps)
    cells = {(c.setting, c.dataset, c.budget, c.repetition): plan.steps[c.step] for c in plan.cells}
    concat = cells[("clust+concat", "ag_news", 64, 1)]
    assert concat.inputs["embeddings"] == cells[("clust+probe", "ag_news", 64, 1)].inputs["embeddings"]
    assert concat.inputs["beside"] == cells[("probe", "ag_news", 64, 1)].inputs["embeddings"]
    assert concat.params == cells[("clust+probe", "ag_news", 64, 1)].params and concat.id != \
        cells[("clust+probe", "ag_news", 64, 1)].id
    # on its own it still plans the pretrained encoder's embedding, once per dataset
    only = build_plan(spec(settings=["clust+concat"]), PREFIXES)
    assert kinds(only) == {"cluster": 2, "intertrain": 2, "embed": 4, "classic": 12}


def test_self_trained_probe_reads_the_concat_probes_embeddings_the_clusters_and_the_selftrain_section():
    plan = build_plan(spec(settings=["clust+concat", "clust+concat+self"]), PREFIXES)
    # no new embedding or encoder: the same two the concatenated probe reads, one cell more each
    assert kinds(plan) == {"cluster": 2, "intertrain": 2, "embed": 4, "classic": 24}
    cells = {(c.setting, c.dataset, c.budget, c.repetition): plan.steps[c.step] for c in plan.cells}
    concat, selfed = cells[("clust+concat", "ag_news", 64, 1)], cells[("clust+concat+self", "ag_news", 64, 1)]
    assert {k: v for k, v in selfed.inputs.items() if k != "clusters"} == concat.inputs
    assert selfed.inputs["clusters"] == f"steps/cluster/{plan.clusterings['ag_news']}"
    # a probe keeps its pseudo-labels by confidence alone unless the spec says otherwise
    assert encode(selfed.params) == {**encode(concat.params), "pseudo_share": 0.3, "pseudo_agree": "none"}
    # the spec's selftrain section sets it (its epochs are the second fine-tune's, not a probe's)
    other = build_plan(spec(settings=["clust+concat+self"], selftrain={"agree": "none", "share": 0.5, "epochs": 3}),
                       PREFIXES)
    params = encode(next(other.steps[c.step] for c in other.cells
                         if (c.dataset, c.budget, c.repetition) == ("ag_news", 64, 1)).params)
    assert (params["pseudo_agree"], params["pseudo_share"], "pseudo_epochs" in params) == ("none", 0.5, False)


def test_a_fine_tune_filters_its_pseudo_labels_by_cluster_and_a_probe_by_confidence_unless_told():
    def agreements(**overrides):
        plan = build_plan(spec(settings=["clust+self", "clust+concat+self"], repetitions=1, budgets=[64], **overrides),
                          PREFIXES)
        return {c.setting: encode(plan.steps[c.step].params)["pseudo_agree"] for c in plan.cells}

    assert agreements() == {"clust+self": "cluster", "clust+concat+self": "none"}
    assert agreements(selftrain={"agree": "cluster"}) == {"clust+self": "cluster", "clust+concat+self": "cluster"}
    assert agreements(selftrain={"agree": "none"}) == {"clust+self": "none", "clust+concat+self": "none"}


def test_only_a_probe_self_trains():
    from jobs.contract.params import ClassicParams, SelfTrainOptions

    kept = SelfTrainOptions(share=0.3, agree="none")
    assert ClassicParams(method="probe", budget=64, repetition=0, self_training=kept).problems() == []
    assert ClassicParams(method="nb", budget=64, repetition=0, self_training=kept).problems() == [
        "self_training: only a probe self-trains, not 'nb'"]
    assert "self_training.agree: unknown agreement filter 'both' (known: cluster, none)" in ClassicParams(
        method="probe", budget=64, repetition=0, self_training=SelfTrainOptions(share=0.3, agree="both")).problems()


def test_probe_only_needs_no_clustering():
    assert kinds(build_plan(spec(settings=["probe"]), PREFIXES)) == {"embed": 2, "classic": 12}


def test_strong_protocol_adds_fine_tunes_only():
    plan = build_plan(spec(settings=["bert", "clust", "probe"], protocols=["paper", "strong"]), PREFIXES)
    assert kinds(plan) == {"cluster": 2, "intertrain": 2, "embed": 2, "finetune": 48, "classic": 12}
    columns = list(dict.fromkeys(c.column for c in plan.cells))
    assert columns == ["bert", "clust", "bert (strong)", "clust (strong)", "probe"]
    strong = next(plan.steps[c.step] for c in plan.cells if c.protocol == "strong")
    assert (strong.params.batch_size, strong.params.lr, strong.params.epochs) == (16, 5e-5, 10)
    # the paper's cells keep their ids when the strong protocol is added
    paper_only = build_plan(spec(settings=["bert", "clust", "probe"]), PREFIXES)
    assert set(paper_only.steps) <= set(plan.steps)


def test_mlm_then_clust_chains_inter_trainings():
    plan = build_plan(spec(settings=["bert", "mlm", "clust", "mlm+clust"]), PREFIXES)
    assert kinds(plan) == {"cluster": 2, "intertrain": 6, "finetune": 48}
    inter = {s.label: s for s in plan.steps.values() if s.kind == "intertrain"}
    mlm, clust, both = inter["ag_news mlm"], inter["ag_news clust"], inter["ag_news mlm+clust"]
    assert mlm.params.objective == "mlm" and (mlm.params.options.epochs, mlm.params.options.replication) == (30, 5)
    assert "encoder" not in clust.inputs and both.inputs["encoder"] == mlm.prefix
    assert both.inputs["clusters"] == clust.inputs["clusters"]  # one clustering per dataset


def test_cluster_sampling_beside_random_and_the_cluster_only_classifier():
    plan = build_plan(spec(settings=["bert", "clusters"], sampling=["random", "cluster"]), PREFIXES)
    columns = list(dict.fromkeys(c.column for c in plan.cells))
    assert columns == ["bert", "clusters", "bert [cluster sample]"]
    random_bert = next(plan.steps[c.step] for c in plan.cells if c.column == "bert")
    cluster_bert = next(plan.steps[c.step] for c in plan.cells if c.column == "bert [cluster sample]")
    assert "sampling" not in encode(random_bert.params) and "clusters" not in random_bert.inputs
    assert cluster_bert.params.sampling == "cluster" and cluster_bert.inputs["clusters"].startswith("steps/cluster/")
    # random-sample ids do not change when cluster sampling is added
    assert set(build_plan(spec(settings=["bert"]), PREFIXES).steps) <= set(plan.steps)
    assert kinds(plan) == {"cluster": 2, "finetune": 24, "classic": 12}


def test_dense_clustering_reads_the_base_embeddings_and_sib_ids_stay():
    sib = build_plan(spec(settings=["clust"]), PREFIXES)
    km = build_plan(spec(settings=["clust", "probe"], clustering={"method": "kmeans"}), PREFIXES)
    cluster = next(s for s in km.steps.values() if s.kind == "cluster")
    probe_embed = next(s for s in km.steps.values() if s.kind == "embed" and s.label.endswith("base"))
    assert cluster.inputs["embeddings"] == probe_embed.prefix  # one embedding serves both
    assert encode(cluster.params)["embedding"] == "encoder"
    assert "embedding" not in encode(next(s for s in sib.steps.values() if s.kind == "cluster").params)


def test_glove_clustering_is_keyed_by_the_file_content(tmp_path):
    glove = tmp_path / "g.txt"
    glove.write_text("a 1 2\n")
    first = build_plan(spec(settings=["clust"], clustering={"method": "hartigan", "embedding": "glove",
                                                            "glove": str(glove)}), PREFIXES)
    glove.write_text("a 1 3\n")
    second = build_plan(spec(settings=["clust"], clustering={"method": "hartigan", "embedding": "glove",
                                                             "glove": str(glove)}), PREFIXES)
    c1 = next(s for s in first.steps.values() if s.kind == "cluster")
    c2 = next(s for s in second.steps.values() if s.kind == "cluster")
    assert c1.id != c2.id and "embeddings" not in c1.inputs


def test_the_gpu_preflight_runs_every_setting_of_the_gpu_grids():
    """bench/preflight.yaml stands in for recipe.yaml and self_finetune.yaml on CPU: it must
    keep every setting, protocol and the repeated inter-training they use."""
    preflight = load_spec(REPO / "bench/preflight.yaml")
    for name in ("recipe", "self_finetune"):
        grid = load_spec(REPO / f"experiments/{name}.yaml")
        assert set(grid.settings) <= set(preflight.settings), name
        assert grid.protocols == preflight.protocols, name
        assert grid.section("intertrain").seeds <= preflight.section("intertrain").seeds, name
