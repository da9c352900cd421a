"""Step kinds come from one descriptor each (jobs.contract.kinds): a kind added from outside
the package (tests/toy_kind.py, a plugin) is planned, packed, scheduled and run like the rest."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jobs.contract.kinds import KINDS, PLUGINS_ENV

pytestmark = pytest.mark.pipeline

PLUGIN = {PLUGINS_ENV: "tests.toy_kind"}


def test_a_kind_from_a_plugin_runs_through_ctune_run(write_spec, tmp_path, ctune, results, data_dir):
    # GIVEN a spec with the toy kind's setting beside bert
    spec = write_spec(settings=["bert", "majority"], repetitions=2)
    # WHEN it is planned without the plugin, THEN the setting is unknown (one line, exit 2)
    unknown = ctune("plan", str(spec))
    assert unknown.returncode == 2 and "unknown setting 'majority'" in unknown.stderr, unknown.stderr
    # WHEN it runs with the plugin, its two cells packed into one process
    done = ctune("run", str(spec), "--pack", "4", env=PLUGIN)
    assert done.returncode == 0, done.stderr
    assert "... majority" in done.stderr and "(+1 more cell(s) in this process)" in done.stderr
    # THEN each toy cell predicted its sample's most common label, and the report has its rows
    store = tmp_path / "store"
    train = [json.loads(line)["label"] for line in (data_dir / "ag_news/train.jsonl").read_text().splitlines()]
    test = [json.loads(line)["label"] for line in (data_dir / "ag_news/test.jsonl").read_text().splitlines()]
    rows = [r for r in results(store / "experiments/tiny/report/results.csv") if r["setting"] == "majority"]
    assert sorted(r["repetition"] for r in rows) == ["0", "1"]
    for r in rows:
        cell = store / "steps/majority" / r["step"]
        sample = json.loads((cell / "sample.json").read_text())["indices"]
        label = json.loads((cell / "metrics.json").read_text())["majority"]
        assert Counter(train[i] for i in sample).most_common(1)[0][1] == sum(train[i] == label for i in sample)
        assert float(r["accuracy"]) == pytest.approx(sum(y == label for y in test) / len(test), abs=1e-6)
    assert "majority" not in KINDS  # the plugin was imported by ctune and its jobs, not by this process


@pytest.fixture
def toy():
    """The toy kind and its setting registered in this process, and taken back after."""
    from controller.plan.settings import REGISTERED
    from jobs.contract.kinds import register
    from tests import toy_kind

    register(toy_kind.KIND)
    toy_kind.register_setting()
    yield toy_kind
    KINDS.pop("majority")
    REGISTERED.pop("majority")


def test_a_registered_kind_is_packed_scheduled_and_placed_by_its_descriptor(toy):
    from controller.plan.graph import build_plan
    from controller.plan.packing import pack_units, packable
    from controller.plan.spec import parse_spec
    from controller.run.backends.local import step_packages
    from controller.run.kube.config import KubernetesSpec
    from controller.run.kube.render import render_job, unit_sizes
    from controller.run.scheduler import schedule

    # GIVEN the toy kind registered in this process
    # WHEN a grid with its setting is planned
    spec = parse_spec({"name": "g", "datasets": ["ag_news"], "settings": ["majority"], "budgets": [64],
                       "repetitions": 3})
    plan = build_plan(spec, {"ag_news": "datasets/ag_news-0123456789abcdef"})
    # THEN its cells are steps of its kind, packed together, needing no package, and on a
    # cluster they run as one Job without a GPU
    steps = list(plan.steps.values())
    assert [s.kind for s in steps] == ["majority"] * 3 and "majority" in packable()
    assert "majority" not in KubernetesSpec().gpu_kinds
    units = pack_units(steps, unit_sizes(KubernetesSpec()))
    assert len(units) == 1 and all(step_packages(s) == () for s in steps)
    assert schedule(units, set(), set(), set(), free=1).start == tuple(units)  # it reads no other step
    job = render_job(units[0], "g", "s3://b/r", KubernetesSpec())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    assert container["command"][4:8] == ["python", "-m", "jobs", "majority"]
