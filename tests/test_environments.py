"""Environments: what a step's record says computed it, and what a report says of a mix."""

from __future__ import annotations

import json

import pytest

from controller.report.cache import CellCache, forget_cached
from controller.report.html import render_mixed
from controller.run.environments import StepEnvironment, format_mixed, format_single, group, older
from jobs.contract.environment import KEYS, RESULT_LIBRARIES, UNRECORDED, installed_versions, of_record
from jobs.storage import open_store

pytestmark = pytest.mark.unit

NEW = {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.25.0", "tokenizers": "0.23.3"}
OLD = {**NEW, "transformers": "5.20.2", "tokenizers": "0.22.1"}


def env(versions: dict, finished: float, device: str = "cpu", name: str = "AMD EPYC") -> StepEnvironment:
    return StepEnvironment.from_json({"versions": versions, "device": device, "device_name": name, "finished": finished})


def test_installed_versions_name_every_result_library_installed_here():
    found = installed_versions()
    assert {"python", "torch", "transformers", "tokenizers", "scikit-learn", "numpy", "scipy", "sib-clustering",
            "setfit", "cluster-tune"} <= set(found)
    assert set(found) <= set(KEYS) and "python" not in RESULT_LIBRARIES


def test_a_record_without_a_version_says_unrecorded():
    old_record = {"versions": {"python": "3.11.7", "torch": "2.13.0+cpu"}}
    environment = dict(of_record(old_record))
    assert environment["torch"] == "2.13.0+cpu" and environment["scipy"] == UNRECORDED
    assert dict(of_record({})) == dict.fromkeys(KEYS, UNRECORDED)


def test_one_environment_says_nothing_of_a_mix():
    found = {"a": env(NEW, 1.0), "b": env(NEW, 2.0)}
    assert format_mixed(found, str, lambda s: "finetune") == []
    assert format_single(found).startswith("all 2 committed steps under one environment: python 3.11.7")
    assert older(found) == []


def test_two_environments_name_the_versions_that_differ_and_the_steps_of_each():
    # GIVEN a cluster step of an older install and two cells of a newer one
    found = {"c1": env(OLD, 1.0), "f1": env(NEW, 5.0), "f2": env(NEW, 4.0)}
    label = {"c1": "cluster ag_news", "f1": "finetune bert r0", "f2": "finetune bert r1"}.get
    lines = format_mixed(found, lambda s: label(s) or s, lambda s: "x", "exp.yaml")
    text = "\n".join(lines)
    # THEN the report names the differing libraries, each environment's versions and steps
    assert "**Mixed environments:** the 3 committed steps were computed under 2 environments, " \
           "which differ in transformers, tokenizers" in text
    assert "* transformers 5.25.0, tokenizers 0.23.3 (newest): 2 step(s): finetune bert r0; finetune bert r1" in text
    assert "* transformers 5.20.2, tokenizers 0.22.1 (older): 1 step(s): cluster ag_news" in text
    assert "`ctune run exp.yaml --redo-older-env` computes again the steps of another environment" in text
    assert older(found) == ["c1"] and [g.steps for g in group(found)] == [("f1", "f2"), ("c1",)]


def test_without_a_reference_the_newest_environment_is_the_one_of_the_last_finished_step():
    found = {"a": env(OLD, 9.0), "b": env(NEW, 5.0), "c": env(NEW, 6.0)}
    assert older(found) == ["b", "c"]
    # with the run's own environment as the reference, the steps of any other are older
    assert older(found, of_record({"versions": NEW})) == ["a"]


def test_a_step_recorded_before_a_library_was_is_compared_on_what_both_record():
    # GIVEN a step whose record names no tokenizers (committed before it was recorded)
    before = {k: v for k, v in NEW.items() if k != "tokenizers"}
    found = {"a": env(before, 1.0), "b": env(NEW, 2.0)}
    # THEN it is of the same environment as a step that does, on every version both name
    assert format_mixed(found, str, lambda s: "k") == [] and older(found) == []
    assert older(found, of_record({"versions": NEW})) == []
    # AND a version both name that differs still tells them apart
    found["a"] = env({**before, "transformers": "5.20.2"}, 1.0)
    assert older(found, of_record({"versions": NEW})) == ["a"]
    assert "which differ in transformers;" in "\n".join(format_mixed(found, str, lambda s: "k"))


def test_one_kind_on_cpu_and_gpu_is_said_two_cpus_are_not():
    found = {"a": env(NEW, 1.0, "gpu", "NVIDIA H100"), "b": env(NEW, 2.0, "cpu", "AMD EPYC"),
             "c": env(NEW, 3.0, "cpu", "Intel Xeon")}
    kinds = {"a": "finetune", "b": "finetune", "c": "cluster"}
    lines = format_mixed(found, str, kinds.__getitem__)
    assert lines[-1].startswith("**Mixed devices:** finetune steps ran on AMD EPYC (1), NVIDIA H100 (1);")
    assert format_mixed(found, str, lambda s: "finetune" if s == "a" else "cluster") == []
    old_record = StepEnvironment.from_json({"versions": NEW, "finished": 4.0})  # no device recorded
    assert format_mixed({"b": found["b"], "d": old_record}, str, lambda s: "finetune") == []


def test_the_page_shows_the_mix_as_an_alert():
    lines = format_mixed({"a": env(OLD, 1.0), "b": env(NEW, 2.0)}, str, lambda s: "k")
    html = render_mixed(tuple(lines))
    assert html.startswith('<div class="mixed" role="alert"><p><strong>Mixed environments:</strong>')
    assert "<li>transformers 5.25.0, tokenizers 0.23.3 (newest): 1 step(s): b</li>" in html
    assert "<code>ctune run SPEC --redo-older-env</code>" in html
    assert render_mixed(()) == ""


def test_uncommitted_steps_leave_every_report_cache(tmp_path):
    # GIVEN two reports' caches holding a cell's metrics and its agreement with a clustering
    store = open_store(str(tmp_path))
    for name in ("one", "two"):
        cache = CellCache(store, f"experiments/{name}/report")
        cache.of_step("cell", "metrics", lambda: {"accuracy": 0.5})
        cache.of_step("other", "metrics", lambda: {"accuracy": 0.7})
        cache.agreement("other", "clus", lambda: 0.1)
        cache.save()
    # WHEN the cell and the clustering are uncommitted
    forget_cached(store, {"cell", "clus"})
    # THEN neither cache knows them; the rest is kept
    for name in ("one", "two"):
        cells = json.loads(store.read_bytes(f"experiments/{name}/report/cells.json"))["cells"]
        assert cells == {"other": {"metrics": {"accuracy": 0.7}, "ami": {}}}


def test_invalidate_forgets_before_and_after_and_uncommits_dependents_first(tmp_path):
    from controller.plan.graph import build_plan
    from controller.plan.spec import parse_spec
    from controller.run.committed import committed, remember
    from controller.run.verify import dependents, invalidate

    # GIVEN a committed grid: a clustering, its inter-training, the cells
    spec = parse_spec({"name": "s", "datasets": ["d"], "settings": ["bert", "clust"], "budgets": [16], "repetitions": 1})
    plan = build_plan(spec, {"d": "datasets/d-0123456789abcdef"})
    store = open_store(str(tmp_path))
    for step in plan.steps.values():
        store.write_bytes(f"{step.prefix}/_SUCCESS", b"{}")
    remember(store, "s", {step.prefix for step in plan.steps.values()})
    events: list[str] = []
    delete, write = store.delete, store.write_bytes
    store.delete = lambda key: (events.append(f"delete {key}"), delete(key))[1]  # type: ignore[method-assign]
    store.write_bytes = lambda key, data: (events.append(f"write {key}"), write(key, data))[1]  # type: ignore[method-assign]
    # WHEN the clustering and what was computed from it are taken back
    cluster = next(sid for sid, st in plan.steps.items() if st.kind == "cluster")
    sids = dependents(plan, cluster)
    invalidate(store, plan, sids, also=lambda prefixes: events.append(f"also {len(prefixes)}"))
    # THEN the run's record and the caches forget them before any commit record goes, and again after
    markers = [e for e in events if e.startswith("delete") and e.endswith("/_SUCCESS")]
    first = events.index(markers[0])
    assert "write experiments/s/committed.json" in events[:first] and f"also {len(sids)}" in events[:first]
    last = events.index(markers[-1])
    assert f"also {len(sids)}" in events[last:]  # (the run's record had forgotten them: nothing to write)
    # AND the commit records go dependents first: no committed step is ever left on an uncommitted input
    assert markers == [f"delete {plan.steps[s].prefix}/_SUCCESS" for s in reversed(sids)]
    assert committed(store, "s", [st.prefix for st in plan.steps.values()]) == {
        st.prefix for sid, st in plan.steps.items() if sid not in sids}
