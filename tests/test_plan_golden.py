"""Step ids are what the store is keyed by: the plans of every shipped spec, and of
synthetic ones covering every setting, give the ids (and order) recorded before the
contract refactor (tests/golden/plan-ids.json, made at ee20552), so every existing store
still reads. One deliberate move since: a default spelled out in a spec (``epochs: 10``)
plans what leaving it out plans (paper.yaml, quickstart.yaml and ``typed-values`` moved)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec, spec_to_dict
from controller.practice.training import TrainRequest, corpus_clustering, training_plan
from jobs.contract.params import ClusterParams

pytestmark = pytest.mark.unit

GOLDEN = json.loads((REPO / "tests/golden/plan-ids.json").read_text())

SYNTHETIC = {
    "default": ({"name": "p", "datasets": ["ag_news", "dbpedia"], "budgets": [64, 128], "repetitions": 3}, False),
    "every-setting": ({"name": "e", "datasets": ["ag_news"],
                       "settings": ["bert", "clust", "mlm", "mlm+clust", "probe", "clust+probe", "nb", "svm", "clusters"],
                       "protocols": ["paper", "strong"], "sampling": ["random", "cluster"], "budgets": [16, 64],
                       "repetitions": 2, "analysis": {"enabled": True}}, False),
    "corpus": ({"name": "c", "datasets": ["ag_news"], "settings": ["bert", "clust", "probe", "clust+probe", "clusters"],
                "budgets": [64], "repetitions": 2}, True),
    "kmeans-encoder": ({"name": "k", "datasets": ["ag_news"], "settings": ["clust", "probe"],
                        "clustering": {"method": "kmeans"}, "repetitions": 1}, False),
    "kmeans-encoder-corpus": ({"name": "k", "datasets": ["ag_news"], "settings": ["clust", "probe"],
                               "clustering": {"method": "hartigan", "n_clusters": 8}, "repetitions": 1}, True),
    "typed-values": ({"name": "t", "datasets": ["ag_news"], "settings": ["bert", "clust", "mlm"],
                      "finetune": {"epochs": 10, "lr": 3e-5}, "intertrain": {"epochs": 1, "max_length": 64},
                      "mlm": {"epochs": 2, "replication": 1}, "seed": 3, "repetitions": 1,
                      "model": "bert-base-uncased"}, False),
    "setfit-and-seeds": ({"name": "s", "datasets": ["ag_news"], "settings": ["bert", "clust", "mlm+clust", "clust+probe",
                                                                            "setfit", "clust+setfit", "clust+self"],
                          "protocols": ["strong"], "repetitions": 2, "intertrain": {"seeds": 2}}, False),
    "concat-probe": ({"name": "cp", "datasets": ["ag_news"], "settings": ["probe", "clust+probe", "clust+concat"],
                      "repetitions": 2, "intertrain": {"seeds": 2}}, False),
    "tiny-test-spec": ({"name": "tiny", "datasets": ["ag_news"], "model": "/tmp/tiny", "settings": ["bert", "clust"],
                        "budgets": [16], "repetitions": 2, "clustering": {"n_clusters": 4, "n_init": 2, "max_iter": 5},
                        "intertrain": {"batch_size": 32, "max_length": 32},
                        "finetune": {"epochs": 2, "batch_size": 8, "max_length": 32}}, False),
}
SHIPPED = [*sorted(str(p.relative_to(REPO)) for p in (REPO / "experiments").glob("*.yaml")), "k8s/base/spec.yaml"]


def _prefixes(spec, corpus: bool):
    data = {d.name: f"datasets/{d.name}-{hashlib.sha256(d.name.encode()).hexdigest()[:16]}" for d in spec.datasets}
    return data, ({k: v.replace("datasets/", "datasets/corpus-") for k, v in data.items()} if corpus else None)


def _snapshot(raw: dict, corpus: bool) -> dict:
    spec = parse_spec(raw)
    plan = build_plan(spec, *_prefixes(spec, corpus))
    steps = [[sid, s.kind, s.label] for sid, s in plan.steps.items()]
    cells = [[c.dataset, c.setting, c.budget, c.repetition, c.step, c.kind, c.protocol, c.sampling] for c in plan.cells]
    entry: dict = {"n_steps": len(steps), "n_cells": len(cells), "clusterings": plan.clusterings,
                   "analyses": [list(a) for a in plan.analyses]}
    if len(steps) > 200:
        entry["steps_sha256"] = hashlib.sha256(json.dumps(steps).encode()).hexdigest()
        entry["cells_sha256"] = hashlib.sha256(json.dumps(cells).encode()).hexdigest()
    else:
        entry.update(steps=steps, cells=cells)
    return entry


@pytest.mark.parametrize("case", list(SYNTHETIC))
def test_synthetic_specs_keep_their_step_ids(case):
    raw, corpus = SYNTHETIC[case]
    assert _snapshot(raw, corpus) == GOLDEN[case]


@pytest.mark.parametrize("path", SHIPPED)
def test_shipped_specs_keep_their_step_ids(path):
    assert _snapshot(yaml.safe_load((REPO / path).read_text()), False) == GOLDEN[path]


def test_practitioner_steps_keep_their_ids():
    prefix = "datasets/train-0123456789abcdef"
    for setting in ("clust", "bert"):
        for protocol in ("strong", "paper"):
            plan = training_plan(TrainRequest(labeled=Path("l"), out=Path("o"), protocol=protocol), setting, prefix)
            assert [[sid, s.kind, s.label] for sid, s in plan.steps.items()] == \
                GOLDEN["practitioner"][f"{setting}-{protocol}"]
    # a probe fine-tunes nothing, so the protocol is not part of its fit's id (pinned when added)
    for setting in ("clust+probe", "probe"):
        for protocol in ("strong", "paper"):
            plan = training_plan(TrainRequest(labeled=Path("l"), out=Path("o"), protocol=protocol), setting, prefix)
            assert [[sid, s.kind, s.label] for sid, s in plan.steps.items()] == GOLDEN["practitioner"][setting]
    for setting in ("clust+concat", "clust+concat+self"):  # pinned when added
        plan = training_plan(TrainRequest(labeled=Path("l"), out=Path("o")), setting, prefix)
        assert [[sid, s.kind, s.label] for sid, s in plan.steps.items()] == GOLDEN["practitioner"][setting]
    clust = corpus_clustering(ClusterParams(n_clusters=8), "datasets/corpus-0123456789abcdef")
    assert [clust.id] == GOLDEN["practitioner"]["suggest"]


@pytest.mark.parametrize("case", [*SHIPPED, *SYNTHETIC])
def test_the_spec_a_run_stores_gives_the_same_plan_again(case):
    """``ctune run`` writes ``experiments/<name>/spec.yaml``; loading it must plan the same
    steps (a value written out that equals no default must load as what was planned)."""
    raw, corpus = (yaml.safe_load((REPO / case).read_text()), False) if case in SHIPPED else SYNTHETIC[case]
    stored = yaml.safe_load(yaml.safe_dump(spec_to_dict(parse_spec(raw)), sort_keys=False))
    assert _snapshot(stored, corpus) == _snapshot(raw, corpus)
    assert parse_spec(stored) == parse_spec(raw)


def test_a_default_spelled_out_plans_what_leaving_it_out_plans():
    """``epochs: 10`` in a spec is the default ``10``: the same steps whether a spec spells a
    default out (as an integer or not) or leaves it out; another value still moves them."""
    base = {"name": "d", "datasets": ["ag_news"], "settings": ["bert", "clust", "clust+self"],
            "protocols": ["paper", "strong"], "repetitions": 1}
    spelled = {**base, "finetune": {"epochs": 10, "lr": 3e-5, "batch_size": 64},
               "intertrain": {"epochs": 1.0}, "selftrain": {"epochs": 2, "share": 0.3}}
    assert _snapshot(spelled, False) == _snapshot(base, False)
    assert _snapshot({**base, "finetune": {"epochs": 10.5}}, False)["steps"] != _snapshot(base, False)["steps"]
