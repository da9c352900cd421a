"""Paired t-tests pair cells on the same sample and correct for the number of tests."""

from __future__ import annotations

import pytest

from controller.stats import format_tests, paired_tests

pytestmark = pytest.mark.unit


def rows_for(column, accs, dataset="d", budget=64):
    return [{"column": column, "dataset": dataset, "budget": budget, "repetition": i, "accuracy": a}
            for i, a in enumerate(accs)]


def test_a_consistent_gain_is_significant_and_a_wash_is_not():
    rows = (rows_for("bert", [0.40, 0.50, 0.45, 0.52, 0.48]) + rows_for("clust", [0.80, 0.79, 0.82, 0.78, 0.81])
            + rows_for("noise", [0.41, 0.49, 0.46, 0.51, 0.49]))
    tests = {t.column: t for t in paired_tests(rows, ["bert", "clust", "noise"], "bert")}
    assert tests["clust"].pairs == 5 and tests["clust"].mean_diff == pytest.approx(33.0)
    assert tests["clust"].p < 0.01
    assert tests["noise"].p > 0.5
    table = "\n".join(format_tests(list(tests.values())))
    assert "| clust | 64 | 5 | +33.0 |" in table and "Bonferroni over 2 tests" in table


def test_only_cells_of_the_same_sample_pair_and_datasets_pool():
    rows = rows_for("bert", [0.5, 0.5], "a") + rows_for("clust", [0.6, 0.7], "a") + \
        rows_for("bert", [0.3, 0.3], "b") + rows_for("clust", [0.5, 0.4, 0.9], "b")
    (test,) = paired_tests(rows, ["bert", "clust"], "bert")
    assert test.pairs == 4 and test.mean_diff == pytest.approx(15.0)


def test_bonferroni_multiplies_and_caps():
    rows = []
    for b in (64, 128, 256):
        rows += rows_for("bert", [0.5, 0.52, 0.49], budget=b) + rows_for("x", [0.51, 0.5, 0.52], budget=b)
    raw = paired_tests(rows[:12], ["bert", "x"], "bert")  # two budgets
    assert all(t.p <= 1.0 for t in raw)
    single = paired_tests(rows_for("bert", [0.5, 0.52, 0.49]) + rows_for("x", [0.51, 0.5, 0.52]), ["bert", "x"], "bert")
    assert raw[0].p == pytest.approx(min(1.0, 2 * single[0].p))


def test_accuracy_plot_is_a_png():
    from controller.plots import accuracy_plot

    rows = []
    for b, base in ((64, 0.4), (128, 0.6), (256, 0.7)):
        rows += rows_for("bert", [base, base + 0.02], "d", b) + rows_for("clust", [base + 0.2, base + 0.22], "d", b)
    png = accuracy_plot(rows, ["d", "e"], ["bert", "clust"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
