"""Mean and SEM over labeled samples and inter-training seeds (controller.analysis.spread)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.analysis.spread import format_shares, per_sample, spread
from controller.analysis.stats import paired_tests

pytestmark = pytest.mark.unit


def grid(values: np.ndarray) -> dict[tuple[int, int], float]:
    return {(r, c): float(values[r, c]) for r in range(values.shape[0]) for c in range(values.shape[1])}


def test_without_copies_it_is_the_usual_sem_over_samples():
    s = spread({(r, 0): v for r, v in enumerate([70.0, 74.0, 78.0, 82.0])})
    assert s.mean == pytest.approx(76.0) and s.sem == pytest.approx(np.std([70, 74, 78, 82], ddof=1) / 2)
    assert s.copies == 1 and s.shares is None and s.format() == "76.0 ± 2.6 (n=4)"
    assert math.isnan(spread({(0, 0): 50.0}).sem) and spread({(0, 0): 50.0}).format() == "50.0 (n=1)"


def test_a_source_alone_gets_all_of_the_variance():
    samples = np.array([60.0, 70.0, 80.0])[:, None] + np.zeros((3, 2))  # copies agree: samples only
    s = spread(grid(samples))
    assert s.shares == pytest.approx({"samples": 1.0, "inter-training": 0.0, "interaction": 0.0})
    assert s.sem == pytest.approx(np.std([60, 70, 80], ddof=1) / math.sqrt(3))
    copies = np.array([72.0, 80.0])[None, :] + np.zeros((5, 2))  # every sample alike: inter-training only
    s = spread(grid(copies))
    assert s.shares["inter-training"] == pytest.approx(1.0) and s.sem == pytest.approx(4.0)
    assert s.format() == "76.0 ± 4.0 (n=5×2)"


def test_hand_computed_two_by_two():
    # rows (samples) 70, 80 on average; copies 72, 78; one interaction term +-1
    values = np.array([[68.0, 72.0], [76.0, 84.0]])
    s = spread(grid(values))
    # grand 75; row means 70, 80; column means 72, 78; residuals +-1
    ms_a, ms_b, ms_e = 2 * 50 / 1, 2 * 18 / 1, 4 * 1 / 1
    assert s.mean == pytest.approx(75.0)
    assert s.sem == pytest.approx(math.sqrt((ms_a + ms_b - ms_e) / 4))
    assert s.shares["samples"] == pytest.approx(((ms_a - ms_e) / 2 / 2) / ((ms_a + ms_b - ms_e) / 4))


def test_the_estimated_variance_of_the_mean_is_unbiased():
    rng = np.random.default_rng(0)
    r, n, sa, sb, se = 5, 3, 4.0, 3.0, 1.0
    truth = sa**2 / r + sb**2 / n + se**2 / (r * n)
    means, estimates = [], []
    for _ in range(3000):
        values = 70 + rng.normal(0, sa, (r, 1)) + rng.normal(0, sb, (1, n)) + rng.normal(0, se, (r, n))
        s = spread(grid(values))
        means.append(s.mean)
        estimates.append(s.sem**2)
    assert np.var(means) == pytest.approx(truth, rel=0.1)
    assert np.mean(estimates) == pytest.approx(truth, rel=0.1)


def test_a_grid_with_holes_is_summarized_per_sample():
    s = spread({(0, 0): 70.0, (0, 1): 74.0, (1, 0): 80.0})  # (1, 1) still running
    assert s.mean == pytest.approx(76.0) and s.shares is None
    assert s.sem == pytest.approx(np.std([72.0, 80.0], ddof=1) / math.sqrt(2))


def rows(setting, accs, copy=0):
    return [{"column": setting, "setting": setting, "dataset": "d", "budget": 64, "repetition": i, "copy": copy,
             "accuracy": a} for i, a in enumerate(accs)]


def test_copies_count_once_per_sample_in_the_paired_tests():
    cells = rows("bert", [0.5, 0.6, 0.55]) + rows("clust", [0.7, 0.8, 0.75]) + rows("clust", [0.9, 0.8, 0.85], copy=1)
    merged = per_sample(cells)
    assert len(merged) == 6
    assert sorted(r["accuracy"] for r in merged if r["setting"] == "clust") == pytest.approx([0.8, 0.8, 0.8])
    (test,) = paired_tests(merged, ["bert", "clust"], "bert")
    assert test.pairs == 3 and test.mean_diff == pytest.approx(25.0)


def test_the_shares_table_lists_only_settings_with_copies():
    with_copies = spread(grid(np.array([[68.0, 72.0], [76.0, 84.0]])))
    lines = format_shares({("d", 64, "clust"): with_copies, ("d", 64, "bert"): spread({(0, 0): 1.0, (1, 0): 2.0})})
    table = [line for line in lines if line.startswith("| d ")]
    assert len(table) == 1 and table[0].startswith("| d | 64 | clust | 2×2 |")
