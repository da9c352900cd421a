"""The step contract: ids, typed parameters, URIs, commit by _SUCCESS, nothing partial looks done."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from jobs.contract.errors import EXIT_BAD_INPUT, EXIT_FAILED, JobError, StepsFailed, cli_exit_code, job_exit_code
from jobs.contract.ids import encode
from jobs.contract.kinds import KINDS
from jobs.contract.params import (
    ClassicParams,
    ClusterParams,
    FinetuneParams,
    IntertrainParams,
    MlmOptimization,
)
from jobs.contract.sampling import sample_indices
from jobs.contract.steps import MARKER, STEP_FILE, StepSpec, is_done, scan_markers, split_step_uri, step_id, step_prefix
from jobs.data import DataError
from jobs.lib.cells import evaluate
from jobs.lib.runner import run_step
from jobs.storage import StoreError, open_store

pytestmark = pytest.mark.unit


def put_step(store, spec: StepSpec) -> str:
    store.write_bytes(f"{spec.prefix}/{STEP_FILE}", spec.to_json().encode())
    return f"{store.root}/{spec.prefix}/{STEP_FILE}"


def cluster(**kw) -> StepSpec:
    inputs = kw.pop("inputs", {"dataset": "datasets/x-1"})
    return StepSpec("cluster", ClusterParams(**kw), inputs)


def test_step_id_depends_on_everything_and_nothing_else():
    a = cluster(n_clusters=50, seed=1)
    assert a.id == step_id("cluster", {**encode(ClusterParams(seed=1))}, {"dataset": "datasets/x-1"})
    assert a.id != cluster(n_clusters=51, seed=1).id
    assert a.id != cluster(n_clusters=50, seed=1, inputs={"dataset": "datasets/x-2"}).id
    assert a.id == StepSpec("cluster", ClusterParams(seed=1), {"dataset": "datasets/x-1"}, label="other").id


def test_fields_added_later_leave_old_ids_alone():
    # GIVEN parameters at the values that reproduce the old behaviour
    sib = encode(ClusterParams())
    classic = encode(ClassicParams(method="nb", budget=64, repetition=0))
    # THEN the fields that did not exist then are not hashed
    assert "embedding" not in sib and "glove" not in sib and "glove_sha256" not in sib
    assert classic == {"method": "nb", "budget": 64, "repetition": 0, "sample_seed": 0}
    # AND a value that changes the result is
    assert encode(ClusterParams(method="kmeans"))["embedding"] == "encoder"
    assert encode(ClassicParams(method="svm", budget=64, repetition=0, C=0.5))["C"] == 0.5
    assert encode(FinetuneParams(model="m", budget=8, repetition=0, sampling="cluster"))["sampling"] == "cluster"


@pytest.mark.parametrize("params", [
    ClusterParams(method="hartigan", embedding="glove", glove="/g.txt", glove_sha256="ab"),
    FinetuneParams(model="m", budget=16, repetition=2, sampling="cluster", epochs=10.0),
    IntertrainParams(objective="mlm", model="m", options=MlmOptimization(replication=2)),
    IntertrainParams(objective="clust", model="m", seed=3),
])
def test_parameters_read_back_exactly_as_written(params):
    spec = StepSpec(params.kind, params, {"dataset": "datasets/x-1"})
    again = StepSpec.from_json(spec.to_json())
    assert again == spec and again.id == spec.id and type(again.params) is type(params)
    assert isinstance(json.loads(spec.to_json())["params"]["epochs" if params.kind != "cluster" else "n_clusters"],
                      (int, float))


def test_integer_values_of_float_fields_keep_their_type():
    # ids written before hash 10 and 10.0 differently: a job must read back what was written
    for epochs in (10, 10.0):
        spec = StepSpec("finetune", FinetuneParams(model="m", budget=8, repetition=0, epochs=epochs),
                        {"dataset": "datasets/x-1"})
        assert StepSpec.from_json(spec.to_json()).id == spec.id


@pytest.mark.parametrize("kind, params, message", [
    ("finetune", {"model": "m", "budget": 8}, "params.repetition: required key is missing"),
    ("finetune", {"model": "m", "budget": 8, "repetition": 0, "warmup": 3}, "params.warmup: unknown key"),
    ("finetune", {"model": "m", "budget": 0, "repetition": 0}, "params.budget: must be at least 1"),
    ("finetune", {"model": "m", "budget": "8", "repetition": 0}, "params.budget: expected integer"),
    ("classic", {"method": "forest", "budget": 8, "repetition": 0}, "unknown classic method 'forest'"),
    ("intertrain", {"setting": "simcse", "model": "m"}, "unknown inter-training objective 'simcse'"),
    ("intertrain", {"setting": "mlm", "model": "m", "mask_prob": 2}, "mask_prob: must be in (0, 1)"),
])
def test_bad_parameters_are_a_job_error_naming_them(kind, params, message):
    raw = json.dumps({"kind": kind, "params": params, "inputs": {}})
    with pytest.raises(JobError, match=re.escape(message)):
        StepSpec.from_json(raw)


@pytest.mark.parametrize("kind, params, inputs, message", [
    ("cluster", ClusterParams(), {"dataset": "datasets/x-1", "encoder": "steps/intertrain/a"},
     "a cluster step takes no input 'encoder' (it takes: dataset, embeddings)"),
    ("cluster", ClusterParams(), {}, "a cluster step needs an input 'dataset'"),
    ("finetune", FinetuneParams(model="m", budget=8, repetition=0),
     {"dataset": "datasets/x-1", "encoder": "steps/embed/a"},
     "a finetune step's input 'encoder' must lie under steps/intertrain/, not 'steps/embed/a'"),
    ("finetune", FinetuneParams(model="m", budget=8, repetition=0), {"dataset": "steps/cluster/a"},
     "a finetune step's input 'dataset' must lie under datasets/, not 'steps/cluster/a'"),
    ("classic", ClassicParams(method="probe", budget=8, repetition=0),
     {"dataset": "datasets/x-1", "beside": "steps/embed/a"},
     "a classic step's input 'beside' needs an input 'embeddings' too"),
])
def test_inputs_a_kind_cannot_take_are_named(kind, params, inputs, message):
    with pytest.raises(JobError, match=re.escape(message)):
        StepSpec(kind, params, inputs)
    # a job reading such a step.json refuses it the same way
    raw = json.dumps({"kind": kind, "params": encode(params), "inputs": inputs})
    with pytest.raises(JobError, match=re.escape(message)):
        StepSpec.from_json(raw)


def test_every_kind_declares_its_inputs():
    from jobs.contract.inputs import DATASET, SOURCE
    from jobs.contract.staging import DATASETS

    # inputs.py cannot import staging or steps (they import it): its prefixes must match theirs
    assert SOURCE[DATASET] == DATASETS
    for source in SOURCE.values():
        assert source == DATASETS or source in {step_prefix(kind, "x").rsplit("/", 1)[0] for kind in KINDS}
    for kind in KINDS.values():
        roles = kind.roles
        assert DATASET in roles.required and set(roles.required) | set(roles.optional) <= set(SOURCE)
        assert all(a in roles.optional and b in (*roles.required, *roles.optional) for a, b in roles.needs)


def test_every_kind_has_a_parameter_class_a_job_module_and_outputs():
    import importlib

    assert list(KINDS) == ["cluster", "intertrain", "finetune", "embed", "classic", "fit", "analyze", "setfit",
                          "evaluate", "export", "drift"]
    for name, kind in KINDS.items():
        assert kind.params.kind == name and kind.outputs
        assert callable(importlib.import_module(kind.job_module).run)
    assert [k for k in KINDS if KINDS[k].cell] == ["finetune", "classic", "setfit"]
    assert [k for k in KINDS if not KINDS[k].gpu] == ["cluster", "classic", "export"]


def test_split_step_uri():
    assert split_step_uri("s3://b/p/steps/cluster/abc/step.json") == ("s3://b/p", "steps/cluster/abc")
    assert split_step_uri("/tmp/s/steps/finetune/x/step.json") == ("/tmp/s", "steps/finetune/x")
    with pytest.raises(JobError, match="not a step URI"):
        split_step_uri("/tmp/s/cluster/abc/step.json")


def commit_outputs(ctx):
    ctx.put_json("assignments.json", {"labels": [0]})
    ctx.put_json("clusters.json", {"ok": True})
    return {"n": 1}


def test_a_failing_step_commits_nothing(tmp_path):
    store = open_store(tmp_path)
    spec = cluster(n_clusters=2)
    store.write_bytes(f"{spec.inputs['dataset']}/{MARKER}", b"{}")  # staged
    uri = put_step(store, spec)

    def half_then_crash(ctx):
        ctx.put_json("assignments.json", {"labels": [0]})
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        run_step(uri, "cluster", half_then_crash)
    assert store.exists(f"{spec.prefix}/assignments.json") and not is_done(store, spec.prefix)

    # a job that forgets one of its kind's outputs is not committed either
    with pytest.raises(RuntimeError, match=r"wrote no clusters\.json"):
        run_step(uri, "cluster", lambda ctx: ctx.put_json("assignments.json", {"labels": [0]}) or {})
    assert not is_done(store, spec.prefix)

    record = run_step(uri, "cluster", commit_outputs)
    assert is_done(store, spec.prefix)
    marker = json.loads(store.read_bytes(f"{spec.prefix}/{MARKER}"))
    assert marker == record and marker["summary"] == {"n": 1}
    assert marker["outputs"] == ["assignments.json", "clusters.json"]
    assert {"python", "torch"} <= set(marker["versions"]) and marker["seconds"] >= 0
    assert scan_markers(store) == ({spec.prefix}, set())

    # a done step is not run again
    calls: list[int] = []
    run_step(uri, "cluster", lambda ctx: calls.append(1))
    assert calls == []


def test_inputs_must_be_done_and_kind_must_match(tmp_path):
    store = open_store(tmp_path)
    spec = StepSpec("finetune", FinetuneParams(model="m", budget=1, repetition=0),
                    {"dataset": "datasets/x-1", "encoder": "steps/intertrain/nothere"})
    store.write_bytes(f"datasets/x-1/{MARKER}", b"{}")  # staged
    uri = put_step(store, spec)
    with pytest.raises(JobError, match=r"input 'encoder' \(steps/intertrain/nothere\) is not done"):
        run_step(uri, "finetune", lambda ctx: None)
    with pytest.raises(JobError, match="is a 'finetune' step, not 'cluster'"):
        run_step(uri, "cluster", lambda ctx: None)


def test_tampered_step_file_is_refused(tmp_path):
    store = open_store(tmp_path)
    spec = cluster(n_clusters=2)
    raw = json.loads(spec.to_json())
    raw["params"]["n_clusters"] = 3
    store.write_bytes(f"{spec.prefix}/{STEP_FILE}", json.dumps(raw).encode())
    with pytest.raises(JobError, match="does not match its content"):
        run_step(f"{store.root}/{spec.prefix}/{STEP_FILE}", "cluster", lambda ctx: None)


def test_exit_codes_follow_one_table():
    assert job_exit_code(JobError("x")) == job_exit_code(DataError("x")) == EXIT_BAD_INPUT
    assert job_exit_code(StoreError("missing in store: x")) == EXIT_BAD_INPUT
    assert job_exit_code(StoreError("cannot reach store", retryable=True)) == EXIT_FAILED
    assert job_exit_code(RuntimeError("anything else")) == EXIT_FAILED
    assert cli_exit_code(StoreError("cannot reach store", retryable=True)) == EXIT_BAD_INPUT
    assert cli_exit_code(StepsFailed("1 step(s) failed")) == EXIT_FAILED


def test_samples_are_seeded_per_budget_and_repetition():
    a = sample_indices(1000, 64, 0, 0)
    assert len(set(a.tolist())) == 64 and a.max() < 1000
    assert np.array_equal(a, sample_indices(1000, 64, 0, 0))
    assert not np.array_equal(a, sample_indices(1000, 64, 1, 0))
    assert not np.array_equal(a, sample_indices(1000, 64, 0, 7))
    with pytest.raises(JobError, match="budget 65 is larger than the train set"):
        sample_indices(64, 65, 0, 0)


def test_evaluate_reports_per_class_and_macro_over_present_classes():
    names = ["a", "b", "c"]
    m = evaluate([0, 0, 1, 1], [0, 1, 1, 1], names)
    assert m["accuracy"] == 0.75 and m["n_test"] == 4
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["c"]["support"] == 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
