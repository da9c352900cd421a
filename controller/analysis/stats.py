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


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1 - math.exp(log_front) * _betacf(b, a, 1 - x) / b


def paired_t_pvalue(x: list[float], y: list[float]) -> float:
    """Two-sided p of the paired t-test of ``x`` against ``y`` (as ``scipy.stats.ttest_rel``)."""
    diffs = [a - c for a, c in zip(x, y, strict=True)]
    n = len(diffs)
    if n < 2:
        return float("nan")
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0:
        return 1.0 if mean == 0 else 0.0
    t = mean / math.sqrt(var / n)
    df = n - 1
    return min(1.0, _incomplete_beta(df / 2, 0.5, df / (df + t * t)))


def _paired(x: list[float], y: list[float]) -> tuple[float, float]:
    """Mean difference and the two-sided p of a paired t-test (1 when every pair is equal)."""
    diffs = [a - c for a, c in zip(x, y)]
    return sum(diffs) / len(diffs), paired_t_pvalue(x, y)


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
