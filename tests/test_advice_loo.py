"""The advice judged leave-one-dataset-out (controller.analysis.advice_loo), on hand-made judgements."""

from __future__ import annotations

import math

import pytest

from controller.analysis.advice import Judgement
from controller.analysis.advice_loo import fit_threshold, format_leave_one_out, keep_rule, leave_one_dataset_out, overall

pytestmark = pytest.mark.unit

FT, PROBE = ("bert", "clust"), ("probe", "clust+probe")


def judged(dataset, ami, without, with_clust, pair=FT, rep=0):
    return Judgement(dataset, 64, rep, "random", "strong", pair, ami, "clust", without, with_clust)


def test_the_threshold_loses_the_fewest_points_and_prefers_inter_training_on_a_tie():
    js = [judged("a", 0.30, 0.5, 0.6), judged("b", 0.02, 0.6, 0.5), judged("c", 0.20, 0.7, 0.75)]
    t = fit_threshold(js)
    assert 0.02 < t <= 0.20  # inter-train on a and c, not on b
    assert fit_threshold([judged("a", 0.3, 0.5, 0.6), judged("c", 0.2, 0.5, 0.6)]) == -math.inf  # always
    assert fit_threshold([judged("a", 0.3, 0.6, 0.5), judged("c", 0.2, 0.6, 0.5)]) == math.inf  # never


def test_a_dataset_the_others_misjudge_costs_the_rule_what_always_saves():
    # d: low AMI, yet inter-training adds 20 points; e: low AMI and it costs 3; f: high AMI, it adds 10
    js = [judged("d", 0.05, 0.50, 0.70), judged("e", 0.02, 0.60, 0.57), judged("f", 0.30, 0.40, 0.50),
          judged("d", 0.06, 0.50, 0.70, rep=1), judged("e", 0.01, 0.60, 0.57, rep=1), judged("f", 0.35, 0.40, 0.50, rep=1)]
    rows = {r.dataset: r for r in leave_one_dataset_out(js)}
    # held out d, the threshold fitted on e and f lies between their AMIs: d is not inter-trained
    assert 0.02 < rows["d"].thresholds[FT] < 0.30 and rows["d"].advised[FT] == 0.0
    assert rows["d"].lost[FT] == pytest.approx({"rule": 20.0, "always": 0.0, "never": 20.0})
    assert rows["e"].lost[FT]["always"] == pytest.approx(3.0)
    totals = overall(list(rows.values()), FT)
    assert totals["always"] == pytest.approx(1.0) and totals["rule"] > totals["always"]
    assert keep_rule(list(rows.values())) is False
    text = "\n".join(format_leave_one_out(js))
    assert "| d | 2 |" in text and "20.00 / 0.00 / 20.00" in text and "always inter-train, and read the AMI" in text


def test_a_rule_that_generalizes_is_kept_and_every_pair_counts():
    js = []
    for ds, ami, gain in (("a", 0.40, 10), ("b", 0.35, 8), ("c", 0.01, -4), ("d", 0.02, -5)):
        for pair in (FT, PROBE):
            js.append(judged(ds, ami, 0.5, 0.5 + gain / 100, pair))
    rows = leave_one_dataset_out(js)
    assert keep_rule(rows) is True
    assert all(r.lost[FT]["rule"] == 0 and r.lost[PROBE]["rule"] == 0 for r in rows)
    # each pair has its own threshold: where the probe always gains, its rule is "always"
    js = [j if j.pair == FT else judged(j.dataset, j.ami, 0.5, 0.6, PROBE) for j in js]
    rows = leave_one_dataset_out(js)
    assert keep_rule(rows) is True and all(r.thresholds[PROBE] == -math.inf for r in rows)
    assert all(0.02 < r.thresholds[FT] < 0.35 for r in rows)
    # a sample judged on both pairs is one sample, and each pair weighs its own judgements
    assert all(r.samples == 1 and r.counts == {FT: 1, PROBE: 1} for r in rows)


def test_each_pair_weighs_the_samples_judged_on_it():
    # the fine-tune pair judged on one sample of a, the probe pair on two of a and two of b
    js = [judged("a", 0.3, 0.5, 0.6), judged("b", 0.0, 0.5, 0.4),
          judged("a", 0.3, 0.5, 0.7, PROBE), judged("a", 0.3, 0.5, 0.7, PROBE, rep=1),
          judged("b", 0.0, 0.5, 0.45, PROBE), judged("b", 0.0, 0.5, 0.45, PROBE, rep=1)]
    rows = {r.dataset: r for r in leave_one_dataset_out(js)}
    assert rows["a"].samples == 2 and rows["a"].counts == {FT: 1, PROBE: 2}
    # always inter-training loses 10 points on b's one fine-tune sample and 5 on each of b's probe samples
    assert overall(list(rows.values()), FT)["always"] == pytest.approx(5.0)
    assert overall(list(rows.values()), PROBE)["always"] == pytest.approx(2.5)


def test_one_dataset_is_not_enough_to_leave_one_out():
    assert leave_one_dataset_out([judged("a", 0.3, 0.5, 0.6)]) == [] and format_leave_one_out([]) == []
    assert keep_rule([]) is None
