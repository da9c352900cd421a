"""Paired t-tests between settings, as the paper's Table 3.

Cells of two settings that share a (dataset, budget, repetition) were trained on the same
labeled sample, so they pair.  Per budget, pairs of every dataset are pooled; p-values are
Bonferroni-corrected over every test in the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedTest:
    column: str
    baseline: str
    budget: int
    pairs: int
    mean_diff: float
    """Mean accuracy difference (column - baseline), in points."""
    p: float
    """Two-sided p-value, Bonferroni-corrected."""


def mean_sem(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _paired(x: list[float], y: list[float]) -> tuple[float, float]:
    """Mean difference and the two-sided p of a paired t-test (1 when every pair is equal)."""
    from scipy.stats import ttest_rel

    diffs = [a - c for a, c in zip(x, y)]
    mean = sum(diffs) / len(diffs)
    if all(d == diffs[0] for d in diffs) and mean == 0:
        return mean, 1.0
    return mean, float(ttest_rel(x, y).pvalue)


def _shared_samples(by_key: dict, column: str, baseline: str, budget: int) -> list[tuple]:
    """(dataset, budget, repetition) of the cells of ``column`` at ``budget`` that the baseline has too."""
    return [k[1:] for k in by_key if k[0] == column and k[2] == budget and (baseline, *k[1:]) in by_key]


def paired_tests(rows: list[dict], columns: list[str], baseline: str) -> list[PairedTest]:
    by_key = {(r["column"], r["dataset"], r["budget"], r["repetition"]): r["accuracy"] for r in rows}
    budgets = sorted({r["budget"] for r in rows})
    raw = []
    for column in (c for c in columns if c != baseline):
        for b in budgets:
            keys = _shared_samples(by_key, column, baseline, b)
            if len(keys) >= 2:
                mean, p = _paired([100 * by_key[(column, *k)] for k in keys],
                                  [100 * by_key[(baseline, *k)] for k in keys])
                raw.append((column, b, len(keys), mean, p))
    n_tests = max(len(raw), 1)
    return [PairedTest(c, baseline, b, n, mean, min(1.0, p * n_tests) if not math.isnan(p) else 1.0)
            for c, b, n, mean, p in raw]


def format_tests(tests: list[PairedTest]) -> list[str]:
    if not tests:
        return []
    lines = ["", f"Paired t-tests against `{tests[0].baseline}` on the same samples (datasets pooled per budget; "
             f"Bonferroni over {len(tests)} tests):", "",
             "| setting | budget | pairs | mean difference (points) | p |", "|---|---:|---:|---:|---:|"]
    for t in tests:
        mark = " *" if t.p < 0.05 else ""
        lines.append(f"| {t.column} | {t.budget} | {t.pairs} | {t.mean_diff:+.1f} | {t.p:.2g}{mark} |")
    return lines
