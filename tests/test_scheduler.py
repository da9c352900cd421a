"""The one scheduler both backends ask (controller.run.scheduler), on a small plan."""

from __future__ import annotations

import pytest

from controller.plan.graph import build_plan
from controller.plan.packing import pack_units
from controller.plan.spec import parse_spec
from controller.run.scheduler import reads, schedule

pytestmark = pytest.mark.unit


@pytest.fixture
def units():
    # GIVEN a grid: a clustering, an inter-training on it, and two bert and two clust cells (packed by start)
    spec = parse_spec({"name": "g", "datasets": ["ag_news"], "settings": ["bert", "clust"], "budgets": [64],
                       "repetitions": 2})
    plan = build_plan(spec, {"ag_news": "datasets/ag_news-0123456789abcdef"})
    return {u.steps[0].kind if u.kind != "finetune" else ("clust" if "encoder" in u.steps[0].inputs else "bert"): u
            for u in pack_units(list(plan.steps.values()), 2)}


def test_only_units_whose_inputs_are_committed_start(units):
    now = schedule(units.values(), set(), set(), set(), free=10)
    assert {u.name for u in now.start} == {units["cluster"].name, units["bert"].name} and not now.blocked
    cluster = units["cluster"].steps[0].id
    now = schedule([units["intertrain"], units["clust"]], {cluster}, set(), set(), free=10)
    assert [u.name for u in now.start] == [units["intertrain"].name]
    assert reads(units["clust"]) == {units["intertrain"].steps[0].id}


def test_a_failed_input_blocks_everything_downstream_even_a_started_unit(units):
    cluster = units["cluster"].steps[0].id
    now = schedule([units["intertrain"], units["bert"]], set(), set(), {cluster}, free=10)
    assert now.blocked == (units["intertrain"],) and now.start == (units["bert"],)
    inter = units["intertrain"].steps[0].id
    now = schedule([units["clust"]], {cluster}, {units["clust"].name}, {inter}, free=10)
    assert now.blocked == (units["clust"],) and not now.start


def test_started_units_never_start_again_and_free_places_bound_the_rest(units):
    ready = [units["cluster"], units["bert"]]
    assert schedule(ready, set(), {units["cluster"].name}, set(), free=10).start == (units["bert"],)
    assert schedule(ready, set(), set(), set(), free=1).start == (units["cluster"],)
    assert schedule(ready, set(), set(), set(), free=0).start == ()
    assert schedule(ready, set(), set(), set(), free=-2).start == ()


def test_reads_leaves_out_what_the_unit_computes_itself_and_what_is_done(units):
    cell = units["clust"]
    inter = units["intertrain"].steps[0].id
    assert reads(cell) == {inter} and reads(cell, done={s.id for s in cell.steps}) == set()


def test_the_local_backend_refuses_a_step_reading_one_neither_in_its_run_nor_done(tmp_path):
    """It used to wait for such a step for ever. (A step read from outside the run and done is
    what every export and drift step of `ctune train` reads: tests/test_practitioner.py.)"""
    from controller.plan.graph import Plan, export_step
    from controller.run.backends.local import LocalBackend
    from jobs.contract.errors import StepsFailed
    from jobs.storage import open_store

    store = open_store(str(tmp_path / "store"))
    step = export_step("steps/fit/0123456789abcdef", "datasets/dev-0123456789abcdef", "export")
    with pytest.raises(StepsFailed, match="reads step 0123456789abcdef, which is neither in the run nor done"):
        LocalBackend(store).run(Plan({step.id: step}, (), {}))
