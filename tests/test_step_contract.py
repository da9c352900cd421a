"""The step contract: ids, URIs, commit by _SUCCESS, nothing partial looks done."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.cells import evaluate, sample_indices
from jobs.step import MARKER, STEP_FILE, JobError, StepSpec, is_done, run_step, split_step_uri
from jobs.storage import open_store


def put_step(store, spec: StepSpec) -> str:
    store.write_bytes(f"{spec.prefix}/{STEP_FILE}", spec.to_json().encode())
    return f"{store.root}/{spec.prefix}/{STEP_FILE}"


def test_step_id_depends_on_everything_and_nothing_else():
    a = StepSpec("cluster", {"k": 50, "seed": 1}, {"dataset": "datasets/x-1"})
    assert a.id == StepSpec("cluster", {"seed": 1, "k": 50}, {"dataset": "datasets/x-1"}).id
    assert a.id != StepSpec("cluster", {"k": 51, "seed": 1}, {"dataset": "datasets/x-1"}).id
    assert a.id != StepSpec("cluster", {"k": 50, "seed": 1}, {"dataset": "datasets/x-2"}).id
    assert a.id == StepSpec("cluster", {"k": 50, "seed": 1}, {"dataset": "datasets/x-1"}, label="other").id


def test_split_step_uri():
    assert split_step_uri("s3://b/p/steps/cluster/abc/step.json") == ("s3://b/p", "steps/cluster/abc")
    assert split_step_uri("/tmp/s/steps/finetune/x/step.json") == ("/tmp/s", "steps/finetune/x")
    with pytest.raises(JobError, match="not a step URI"):
        split_step_uri("/tmp/s/cluster/abc/step.json")


def test_a_failing_step_commits_nothing(tmp_path):
    store = open_store(tmp_path)
    spec = StepSpec("cluster", {"k": 1})
    uri = put_step(store, spec)

    def half_then_crash(ctx):
        ctx.put_json("partial.json", {"x": 1})
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        run_step(uri, "cluster", half_then_crash)
    assert store.exists(f"{spec.prefix}/partial.json") and not is_done(store, spec.prefix)

    record = run_step(uri, "cluster", lambda ctx: ctx.put_json("out.json", {"ok": True}) or {"n": 1})
    assert is_done(store, spec.prefix)
    marker = json.loads(store.read_bytes(f"{spec.prefix}/{MARKER}"))
    assert marker == record and marker["summary"] == {"n": 1} and marker["outputs"] == ["out.json"]
    assert {"python", "torch"} <= set(marker["versions"]) and marker["seconds"] >= 0

    # a done step is not run again
    calls = []
    run_step(uri, "cluster", lambda ctx: calls.append(1))
    assert calls == []


def test_inputs_must_be_done_and_kind_must_match(tmp_path):
    store = open_store(tmp_path)
    spec = StepSpec("finetune", {"b": 1}, {"encoder": "steps/intertrain/nothere"})
    uri = put_step(store, spec)
    with pytest.raises(JobError, match=r"input 'encoder' \(steps/intertrain/nothere\) is not done"):
        run_step(uri, "finetune", lambda ctx: None)
    with pytest.raises(JobError, match="is a 'finetune' step, not 'cluster'"):
        run_step(uri, "cluster", lambda ctx: None)


def test_tampered_step_file_is_refused(tmp_path):
    store = open_store(tmp_path)
    spec = StepSpec("cluster", {"k": 1})
    raw = json.loads(spec.to_json())
    raw["params"]["k"] = 2
    store.write_bytes(f"{spec.prefix}/{STEP_FILE}", json.dumps(raw).encode())
    with pytest.raises(JobError, match="does not match its content"):
        run_step(f"{store.root}/{spec.prefix}/{STEP_FILE}", "cluster", lambda ctx: None)


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
