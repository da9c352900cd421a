"""Paired t-tests pair cells on the same sample and correct for the number of tests."""

from __future__ import annotations

import pytest

from controller.analysis.stats import format_tests, paired_tests

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


def test_accuracy_plot_is_an_svg_that_draws_the_means():
    import xml.etree.ElementTree as ET

    from controller.report.plots import accuracy_plot

    rows = []
    for b, base in ((64, 0.4), (128, 0.6), (256, 0.7)):
        rows += rows_for("bert", [base, base + 0.02], "d", b) + rows_for("clust", [base + 0.2, base + 0.22], "d", b)
    rows += rows_for("bert", [0.3], "e", 64)  # a dataset with one cell so far
    svg = ET.fromstring(accuracy_plot(rows, ["d", "e"], ["bert", "clust"]))
    ns = {"s": "http://www.w3.org/2000/svg"}
    panels = svg.findall("s:g[@class='panel']", ns)
    assert [p.get("data-dataset") for p in panels] == ["d", "e"]
    lines = {(p.get("data-dataset"), g.get("data-setting")): g for p in panels for g in p.findall("s:g", ns)}
    assert set(lines) == {("d", "bert"), ("d", "clust"), ("e", "bert")}

    def points(key):
        return [tuple(map(float, xy.split(","))) for xy in lines[key].find("s:polyline", ns).get("points").split()]

    bert, clust = points(("d", "bert")), points(("d", "clust"))
    assert len(bert) == len(clust) == 3 and len(points(("e", "bert"))) == 1
    # budgets left to right at equal log steps; higher accuracy higher up (smaller y)
    assert bert[0][0] < bert[1][0] < bert[2][0]
    assert bert[1][0] - bert[0][0] == pytest.approx(bert[2][0] - bert[1][0], abs=0.2)
    assert bert[0][1] > bert[1][1] > bert[2][1] and all(c[1] < b[1] for b, c in zip(bert, clust))
    # error bars (SEM of 1 point) on the two-repetition cells; none on a single cell
    assert len(lines[("d", "bert")].findall("s:line", ns)) == 3 * 3
    assert not lines[("e", "bert")].findall("s:line", ns)
    assert "clust at 128: 81.0 ± 1.0" in [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]


