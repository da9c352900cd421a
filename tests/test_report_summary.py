"""The summary's tables from a small fixed set of cells (controller.report.results.summarize)."""

from __future__ import annotations

import pytest

from controller.plan.graph import build_plan
from controller.plan.spec import parse_spec
from controller.report.results import summarize

pytestmark = pytest.mark.unit


def rows_of(plan, accuracy):
    return [{"dataset": c.dataset, "setting": c.setting, "protocol": c.protocol, "sampling": c.sampling,
             "budget": c.budget, "repetition": c.repetition, "copy": c.copy, "column": c.column, "step": c.step,
             "accuracy": accuracy(c)} for c in plan.cells]


def test_strong_only_grids_are_tested_against_their_bert_and_copies_count_once():
    spec = parse_spec({"name": "s", "datasets": ["d"], "settings": ["bert", "clust", "setfit"], "protocols": ["strong"],
                       "budgets": [64], "repetitions": 3, "intertrain": {"seeds": 2}})
    plan = build_plan(spec, {"d": "datasets/d-0123456789abcdef"})
    gains = {"bert": 0.0, "clust": 0.10, "setfit": 0.05}
    text = summarize(spec, plan, rows_of(plan, lambda c: 0.5 + gains[c.setting] + 0.01 * c.repetition + 0.002 * c.copy),
                     0, {})
    assert "| d | 64 | 51.0 ± 0.6 (n=3) | 61.1 ± 0.6 (n=3×2) | 56.0 ± 0.6 (n=3) |" in text
    assert "Paired t-tests against `bert (strong)`" in text
    assert "| clust (strong) | 64 | 3 | +10.1 |" in text and "| setfit | 64 | 3 | +5.0 |" in text
    assert "| d | 64 | clust (strong) | 3×2 |" in text  # where the SEM of the inter-trained setting comes from


def test_wherever_the_advice_rule_is_shown_the_projects_finding_is_beside_it():
    from controller.analysis.advice import RULE_FINDING, THRESHOLD, Judgement, format_advice
    from controller.report.html import render_nmi
    from controller.report.paper_tables import NmiPoint

    judged = [Judgement("ag_news", 64, 0, "random", "paper", ("bert", "clust"), 0.2, "clust", 0.5, 0.6)]
    heading = format_advice(judged)[1]
    assert f"at least {THRESHOLD}" in heading and RULE_FINDING in heading
    assert "lost more points than always inter-training" in RULE_FINDING
    page = render_nmi((NmiPoint("ag_news", nmi=0.4, gain=3.0, ami=0.2),))
    assert f"at least {THRESHOLD}" in page and "not a recommendation" in page

