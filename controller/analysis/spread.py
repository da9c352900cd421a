"""Mean and SEM of a setting's accuracy over both of its sources of variance.

A cell is one (labeled sample, inter-training) pair: with ``intertrain: {seeds: N}`` every
sample is fine-tuned on each of the N inter-trained encoders, a crossed design. Its
accuracy is modelled as ``mu + a_sample + b_intertraining + e``; the grand mean's variance
``s_a/R + s_b/N + s_e/(RN)`` is estimated from the two-way ANOVA's mean squares
(``(MS_A + MS_B - MS_E) / (RN)``), and each term is reported as that source's share.
Without copies (N = 1) this is the usual SEM over samples.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

SAMPLE_KEY = ("dataset", "budget", "repetition", "sampling", "protocol", "setting")
"""What identifies a labeled sample's cells of one setting (copies of the encoder aside)."""


@dataclass(frozen=True)
class Spread:
    mean: float
    sem: float
    """NaN when there is a single cell."""
    samples: int
    copies: int
    shares: dict[str, float] | None = None
    """With copies of a full grid: the share of the mean's variance from ``samples``,
    ``inter-training`` and their ``interaction`` (summing to 1), else None."""

    def format(self) -> str:
        if math.isnan(self.sem):
            return f"{self.mean:.1f} (n=1)"
        n = f"{self.samples}×{self.copies}" if self.copies > 1 else str(self.samples)
        return f"{self.mean:.1f} ± {self.sem:.1f} (n={n})"


def spread(cells: dict[tuple[int, int], float]) -> Spread:
    """``cells``: (repetition, copy) -> value. A grid with holes (cells still running) is
    summarized per sample: each sample's mean over its copies, SEM over samples."""
    reps = sorted({r for r, _ in cells})
    copies = sorted({c for _, c in cells})
    values = np.array([[cells.get((r, c), np.nan) for c in copies] for r in reps], dtype=float)
    if np.isnan(values).any() or len(copies) < 2 or len(reps) < 2:
        per_sample = np.nanmean(values, axis=1)
        mean = float(per_sample.mean())
        sem = float(per_sample.std(ddof=1) / math.sqrt(len(per_sample))) if len(per_sample) > 1 else float("nan")
        if len(per_sample) == 1 and len(copies) > 1 and not np.isnan(values).any():
            row = values[0]
            sem = float(row.std(ddof=1) / math.sqrt(len(row)))
        return Spread(mean, sem, len(reps), len(copies))
    return _crossed(values)


def _crossed(values: np.ndarray) -> Spread:
    r, n = values.shape
    grand = float(values.mean())
    rows, cols = values.mean(axis=1), values.mean(axis=0)
    ms_a = n * float(((rows - grand) ** 2).sum()) / (r - 1)
    ms_b = r * float(((cols - grand) ** 2).sum()) / (n - 1)
    resid = values - rows[:, None] - cols[None, :] + grand
    ms_e = float((resid ** 2).sum()) / ((r - 1) * (n - 1))
    parts = {"samples": max(0.0, (ms_a - ms_e) / n) / r,
             "inter-training": max(0.0, (ms_b - ms_e) / r) / n,
             "interaction": ms_e / (r * n)}
    total = sum(parts.values())
    shares = {k: (v / total if total > 0 else 0.0) for k, v in parts.items()}
    return Spread(grand, math.sqrt(total), r, n, shares)


def setting_spread(rows: list[dict]) -> Spread:
    """The spread of one setting's rows (accuracy in points)."""
    return spread({(int(r["repetition"]), int(r.get("copy") or 0)): 100 * float(r["accuracy"]) for r in rows})


def per_sample(rows: list[dict]) -> list[dict]:
    """One row per labeled sample and setting: accuracies averaged over the encoder's copies,
    so a paired test or the advice counts each sample once."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(*(r.get(k) for k in SAMPLE_KEY), r.get("column"))].append(r)
    out = []
    for members in groups.values():
        first = dict(members[0])
        first["accuracy"] = float(np.mean([float(m["accuracy"]) for m in members]))
        first["copies"] = len(members)
        out.append(first)
    return out


def format_shares(spreads: dict[tuple[str, int, str], Spread]) -> list[str]:
    """Where the SEM of each inter-trained setting comes from, for the summary."""
    shown = {k: s for k, s in spreads.items() if s.shares}
    if not shown:
        return []
    lines = ["", "Sources of variance of the mean (cells = labeled samples × inter-training seeds; "
             "two-way ANOVA): share of the squared SEM from each.", "",
             "| dataset | budget | setting | cells | SEM (points) | samples | inter-training | interaction |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for (dataset, budget, column), s in shown.items():
        assert s.shares is not None
        lines.append(f"| {dataset} | {budget} | {column} | {s.samples}×{s.copies} | {s.sem:.2f} | "
                     f"{100 * s.shares['samples']:.0f}% | {100 * s.shares['inter-training']:.0f}% | "
                     f"{100 * s.shares['interaction']:.0f}% |")
    return lines
