"""The promotion gate's evidence and rule, on labels made by hand (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.models.evidence import mcnemar_exact, paired_evidence, texts_to_decide
from controller.models.gate import INCONCLUSIVE, POINT_ESTIMATE, PROMOTE, REFUSE, GateSettings, decide, judge, score

pytestmark = pytest.mark.unit


def flipped(gold: list[str], wrong: set[int], labels: str = "ab") -> list[str]:
    return [labels[(labels.index(g) + 1) % len(labels)] if i in wrong else g for i, g in enumerate(gold)]


def _f1_of(gold: list[str], predicted: list[str], label: str) -> float:
    tp = sum(g == p == label for g, p in zip(gold, predicted))
    fp = sum(p == label != g for g, p in zip(gold, predicted))
    fn = sum(g == label != p for g, p in zip(gold, predicted))
    return 100 * 2 * tp / (2 * tp + fp + fn)


def test_scores_are_accuracy_and_macro_f1_over_the_dev_sets_labels():
    s = score(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert s.accuracy == 75.0 and s.n == 4
    assert s.macro_f1 == pytest.approx(100 * (2 / 3 + 0.8) / 2)  # F1 a = 2/3, F1 b = 4/5
    # a version that predicts a label the dev set does not hold is averaged over the same labels
    other = score(["a", "a", "b", "b"], ["a", "c", "b", "b"])
    assert other.macro_f1 == pytest.approx(100 * (2 / 3 + 1.0) / 2)


def test_evidence_counts_flips_and_mcnemar_by_hand():
    gold = ["a", "b"] * 50
    current = flipped(gold, set(range(0, 20)))  # 80 right
    new = flipped(gold, set(range(10, 20)) | {50, 51})  # fixes 0-9, breaks 50 and 51: 88 right
    e = paired_evidence(gold, new, current)
    assert (e.new_only, e.current_only, e.n) == (10, 2, 100)
    assert e.accuracy.change == 8.0 and e.negative_flip_rate == 2.0
    assert e.mcnemar_p == pytest.approx(2 * (1 + 12 + 66) / 2**12)  # two-sided exact, b = 10, c = 2
    assert e.accuracy.low < 8.0 < e.accuracy.high
    assert e.macro_f1.change == pytest.approx(score(gold, new).macro_f1 - score(gold, current).macro_f1, abs=1e-3)
    assert set(e.labels) == {"a", "b"}
    per_label_new = _f1_of(gold, new, "a")
    per_label_cur = _f1_of(gold, current, "a")
    assert e.labels["a"].change == pytest.approx(per_label_new - per_label_cur, abs=1e-3)
    assert per_label_cur == pytest.approx(80.0)  # 40 of 50 a texts right, 10 b texts called a
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0


@pytest.mark.parametrize("n", [100, 300, 1000])
def test_the_bounds_are_stable_to_a_tenth_of_a_point_across_seeds(n):
    rng = np.random.default_rng(n)
    gold = [str(x) for x in rng.integers(0, 4, n)]
    current = [g if rng.random() < 0.8 else str((int(g) + 1) % 4) for g in gold]
    new = [c if rng.random() < 0.88 else str(rng.integers(0, 4)) for c in current]
    runs = [paired_evidence(gold, new, current, seed=seed) for seed in range(10)]
    for metric in ("accuracy", "macro_f1"):
        for bound in ("low", "high"):
            values = np.array([getattr(getattr(r, metric), bound) for r in runs])
            assert np.abs(values - np.median(values)).max() <= 0.1, (metric, bound, values)
    assert runs[0].accuracy.low < runs[0].accuracy.change < runs[0].accuracy.high


def test_the_same_loss_in_points_gets_the_same_word_however_it_rounds():
    gold = ["a", "b"] * 150
    for before, after in ((194, 191), (195, 192)):  # 300 texts: both exactly one point lower
        current = flipped(gold, set(range(before, 300)))
        new = flipped(gold, set(range(after, 300)))
        e = paired_evidence(gold, new, current)
        assert e.accuracy.change == -1.0  # from the counts: 3 texts of 300, not 64.67 - 63.67
        assert round(e.macro_f1.change, 1) == -1.0  # (-1.0004 and -0.9996: compared as shown)
        assert judge(e, GateSettings(rule=POINT_ESTIMATE, tolerance=1.0))[0] == PROMOTE
        outcome, why = judge(e, GateSettings(rule=POINT_ESTIMATE, tolerance=0.5))
        assert outcome == REFUSE and "accuracy -1.0" in why


def test_the_rule_promotes_refuses_and_is_inconclusive_on_evidence():
    gold = ["a", "b"] * 500
    current = flipped(gold, set(range(800, 1000)))  # 80.0
    same = flipped(gold, set(range(790, 990)))  # 80.0, disagreeing on 20 texts
    worse = flipped(gold, set(range(700, 1000)))  # 70.0
    settings = GateSettings(tolerance=2.0)
    assert judge(paired_evidence(gold, same, current), settings)[0] == PROMOTE
    outcome, why = judge(paired_evidence(gold, worse, current), settings)
    assert outcome == REFUSE and why.startswith("worse beyond the tolerance") and "accuracy -10.0" in why
    # the same small loss on 100 texts cannot be told from the tolerance: inconclusive
    g, c = gold[:100], flipped(gold[:100], set(range(80, 100)))
    slightly = flipped(gold[:100], set(range(78, 100)))  # -2 on 100 texts
    e = paired_evidence(g, slightly, c)
    outcome, why = judge(e, settings)
    assert outcome == INCONCLUSIVE and why.startswith("cannot rule out a loss beyond the tolerance")
    lighter = paired_evidence(g, flipped(g, set(range(79, 100))), c)  # -1.0 [-3.0, +0.0] on 100 texts
    assert texts_to_decide(lighter.accuracy, 100, 2.0) == 400  # half-width 2 over a gap of 1: 4x the texts
    decision = decide(g, slightly, [("v1", "current", c)], settings, "d" * 64)
    assert decision.outcome == INCONCLUSIVE and decision.needed is None  # -2.0 sits on the tolerance
    assert "dev texts would decide" not in decision.why
    one_less = decide(g, flipped(g, set(range(79, 100))), [("v1", "current", c)], settings, "d" * 64)
    assert one_less.outcome == INCONCLUSIVE and one_less.needed >= 400  # the larger of accuracy's and macro-F1's
    assert one_less.why.endswith(f"; about {one_less.needed} dev texts would decide at the changes seen")


def test_one_label_falling_beyond_its_margin_holds_the_version_back():
    gold = ["a"] * 100 + ["b"] * 100 + ["c"] * 100
    current = list(gold)
    # c loses 20 of its texts to a; a and b stay right: accuracy -6.7, but c's F1 falls ~12
    new = [("a" if i in set(range(200, 220)) else g) for i, g in enumerate(gold)]
    e = paired_evidence(gold, new, current)
    assert e.labels["c"].change < -10
    loose = GateSettings(tolerance=20.0, label_margin=10.0)
    outcome, why = judge(e, loose)
    assert outcome == INCONCLUSIVE and why.startswith("label c F1 -1")  # fell, not shown beyond the margin
    assert judge(e, GateSettings(tolerance=20.0, label_margin=2.0))[0] == REFUSE  # wholly below -2
    assert judge(e, GateSettings(tolerance=20.0, label_margin=50.0))[0] == PROMOTE


def test_a_first_version_is_promoted_and_a_decision_is_keyed_by_dev_set_and_settings():
    gold = ["a", "b"] * 10
    first = decide(gold, gold, [], GateSettings(), "d" * 64)
    assert first.outcome == PROMOTE and first.why == "no current version"
    keys = {GateSettings().key("d" * 64), GateSettings().key("e" * 64), GateSettings(tolerance=1.0).key("d" * 64),
            GateSettings(rule=POINT_ESTIMATE).key("d" * 64)}
    assert len(keys) == 4 and GateSettings().key("d" * 64) == first.key


def test_the_gates_bench_counts_every_trial_and_makes_labels_wrong_as_asked():
    from bench.gate import _noisy, measure, table

    rng = np.random.default_rng(0)
    gold = np.asarray([str(x) for x in rng.integers(0, 4, 400)])
    current = np.where(rng.random(400) < 0.8, gold, "0")
    worse = np.where(rng.random(400) < 0.6, current, "1")  # about 20 points worse
    rows = measure(gold, {"current": current, "worse": worse}, trials=3, seed=1)
    assert [r["size"] for r in rows] == [100, 300]  # 1,000 is more than the pool
    for r in rows:
        assert all(sum(c.values()) == 3 for c in r["counts"].values())
        assert r["counts"]["tolerance 2"].get("promote", 0) == 0
    assert "| x | worse |" in table({"x": rows})
    labels = np.asarray(list("aabbccdd" * 8))
    sample = np.arange(0, 64, 2)
    noisy = _noisy(labels, sample, 0.25, 7)
    changed = np.flatnonzero(noisy != labels)
    assert len(changed) == 8 and set(changed) <= set(sample.tolist())


def test_versions_that_know_other_labels_are_compared_on_the_dev_texts_of_labels_both_know():
    from controller.models.gate import Comparison
    from jobs.data import DataError

    gold = ["a"] * 100 + ["b"] * 100 + ["new"] * 50
    current = ["a"] * 100 + ["b"] * 100 + ["a"] * 50  # cannot say "new": all 50 wrong
    mine = ["a"] * 100 + ["b"] * 100 + ["new"] * 50
    unfair = decide(gold, mine, [("v1", "current", current)], GateSettings(), "d")
    assert unfair.comparisons[0].left_out == () and unfair.comparisons[0].evidence.accuracy.change == 20.0
    fair = decide(gold, mine, [("v1", "current", current)], GateSettings(), "d",
                  {"": ["a", "b", "new"], "v1": ["a", "b"]})
    c = fair.comparisons[0]
    assert c.left_out == ("new",) and c.evidence.n == 200 and c.evidence.accuracy.change == 0.0
    assert c.scores.n == c.new_scores.n == 200 and c.new_scores.accuracy == 100.0 and fair.new.n == 250
    assert fair.promote and "on the 200 dev texts of labels both know (not new)" in c.why
    assert Comparison.from_dict(c.to_dict()) == c
    # a label dropped: the new version does not know "b"; the current one does
    dropped = decide(gold, mine, [("v1", "current", current)], GateSettings(), "d", {"": ["a", "new"], "v1": ["a", "b"]})
    assert dropped.comparisons[0].left_out == ("b", "new") and dropped.comparisons[0].evidence.n == 100
    with pytest.raises(DataError, match="no text of a label both versions know"):
        decide(["b"] * 10, ["b"] * 10, [("v1", "current", ["b"] * 10)], GateSettings(), "d", {"": ["a"], "v1": ["a"]})
