"""The registry of inter-trainings drives the spec, the settings, the plan and the job.

The worked example: a toy objective with options of its own, registered the way a real one
is (an ``Objective`` and an ``InterTraining`` line in ``jobs/contract/intertrainings.py``) plus
its job module (``jobs/objectives/<name>.py``, here put in place by the test), and nothing
else: the spec takes its section, the settings list it, the plan builds its encoder, the
job decodes its options and runs it.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass

import pytest

from controller.plan.graph import build_plan
from controller.plan.settings import all_settings
from controller.plan.spec import SpecError, needs_clustering, parse_spec
from jobs.contract import intertrainings
from jobs.contract.intertrainings import InterTraining, Objective
from jobs.contract.params import Optimization
from jobs.contract.staging import TRAIN, stage, staged_dataset
from jobs.contract.steps import STEP_FILE, StepSpec
from jobs.data import Examples
from jobs.storage import open_store

pytestmark = pytest.mark.unit

PREFIXES = {"ag_news": "datasets/ag_news-0123456789abcdef"}


@dataclass(frozen=True, kw_only=True)
class ToyOptions(Optimization):
    """A toy objective's options: an optimization, and one knob of its own."""

    epochs: float = 2
    noise: float = 0.1

    def problems(self) -> list[str]:
        return super().problems() + ([] if 0 <= self.noise <= 1 else [f"noise: must be in [0, 1], got {self.noise}"])


@pytest.fixture
def toy(monkeypatch):
    """Register the toy objective and two inter-trainings that use it."""
    monkeypatch.setitem(intertrainings.OBJECTIVES, "toy", Objective("toy", "toy", ToyOptions, needs_clusters=False))
    monkeypatch.setitem(intertrainings.INTER_TRAININGS, "toy",
                        InterTraining("toy", "toy", "base", "toy inter-training, then fine-tune"))
    monkeypatch.setitem(intertrainings.INTER_TRAININGS, "clust+toy",
                        InterTraining("clust+toy", "toy", "clust", "cluster, then toy inter-training"))


def test_a_registered_inter_training_is_a_setting_with_a_spec_section(toy):
    assert {"toy", "clust+toy"} <= set(all_settings())
    spec = parse_spec({"name": "t", "datasets": ["ag_news"], "settings": ["bert", "toy"], "toy": {"noise": 0.3}})
    assert spec.section("toy") == ToyOptions(noise=0.3)
    with pytest.raises(SpecError, match=r"toy\.noise: must be in \[0, 1\], got 2"):
        parse_spec({"name": "t", "datasets": ["ag_news"], "settings": ["toy"], "toy": {"noise": 2}})


def test_unregistered_names_are_refused():
    with pytest.raises(SpecError, match="toy: unknown key"):
        parse_spec({"name": "t", "datasets": ["ag_news"], "toy": {"noise": 0.3}})
    with pytest.raises(SpecError, match="settings: unknown setting 'toy'"):
        parse_spec({"name": "t", "datasets": ["ag_news"], "settings": ["toy"]})


def test_the_plan_builds_the_chain_and_the_clustering_only_when_needed(toy):
    own = parse_spec({"name": "t", "datasets": ["ag_news"], "settings": ["bert", "toy"], "repetitions": 1})
    plan = build_plan(own, PREFIXES)
    assert [s.kind for s in plan.steps.values()].count("cluster") == 0 and not needs_clustering(own)
    inter = next(s for s in plan.steps.values() if s.kind == "intertrain")
    assert inter.params.objective == "toy" and inter.params.options == ToyOptions() and "clusters" not in inter.inputs
    cell = next(plan.steps[c.step] for c in plan.cells if c.setting == "toy")
    assert cell.inputs["encoder"] == inter.prefix

    chained = parse_spec({"name": "t", "datasets": ["ag_news"], "settings": ["clust+toy"], "repetitions": 1})
    plan = build_plan(chained, PREFIXES)
    assert needs_clustering(chained)  # upstream of the encoder, not the objective itself
    assert [s.label for s in plan.steps.values() if s.kind in ("cluster", "intertrain")] == \
        ["ag_news", "ag_news clust", "ag_news clust+toy"]
    toy_step = next(s for s in plan.steps.values() if s.label == "ag_news clust+toy")
    assert toy_step.inputs["encoder"].startswith("steps/intertrain/") and "clusters" not in toy_step.inputs


def test_the_job_decodes_the_options_and_runs_the_objective(toy, monkeypatch, tmp_path, tiny_model):
    # GIVEN the toy objective's job module (a real one is jobs/objectives/toy.py)
    seen: dict = {}

    def train(ctx, texts, source, progress):
        from jobs.lib import models

        seen.update(options=ctx.params.options, texts=len(texts))
        return models.load_classifier(source, 2, ctx.params.seed), models.load_tokenizer(source), {"train_s": 0.0}

    module = types.ModuleType("jobs.objectives.toy")
    module.train = train  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jobs.objectives.toy", module)
    # AND a step the plan made, in a store
    spec = parse_spec({"name": "t", "datasets": ["ag_news"], "settings": ["toy"], "model": tiny_model,
                       "toy": {"noise": 0.25}, "repetitions": 1})
    store = open_store(tmp_path / "store")
    dataset = staged_dataset("ag_news", {TRAIN: Examples(("a b c", "d e f"), ("x", "y"))}, ["x", "y"])
    stage(store, dataset)
    step = next(s for s in build_plan(spec, {"ag_news": dataset.prefix}).steps.values() if s.kind == "intertrain")
    store.write_bytes(f"{step.prefix}/{STEP_FILE}", step.to_json().encode())
    assert StepSpec.from_json(step.to_json()).params.options == ToyOptions(noise=0.25)
    # WHEN the intertrain job runs it
    from jobs.kinds import intertrain
    from jobs.lib.runner import run_step

    record = run_step(f"{store.root}/{step.prefix}/{STEP_FILE}", "intertrain", intertrain.run)
    # THEN the objective got its typed options and the encoder was committed
    assert seen == {"options": ToyOptions(noise=0.25), "texts": 2}
    assert "model/config.json" in record["outputs"]
    assert json.loads(store.read_bytes(f"{step.prefix}/train.json"))["setting"] == "toy"
