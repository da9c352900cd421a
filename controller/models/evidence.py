"""Paired evidence on one dev set: what changed between two versions' labels for the same texts.

Pure functions of the gold labels and the two versions' predicted labels. Every figure is in
points (percent) and is a change, new minus current:

* accuracy and macro-F1, each with a paired bootstrap interval (the same resampled texts for
  both versions; seeded, so the same inputs give the same interval);
* each label's F1;
* McNemar's exact test on the texts where exactly one of the two is right;
* the negative flip rate: texts the current version got right and the new one gets wrong.

Macro-F1 averages over the labels of the dev set (every one of them a label of the model,
``publish.check_dev``): both versions over the same labels, whatever each predicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

RESAMPLES = 20_000
"""Bootstrap resamples. With 20,000 each bound of the interval stays within 0.1 point of its
median over ten seeds, on dev sets of 100, 300 and 1,000 texts (tests/test_gate.py checks it)."""
SEED = 0
CHUNK = 1_000


@dataclass(frozen=True)
class Interval:
    change: float
    """The observed change, points."""
    low: float
    high: float

    def text(self) -> str:
        return f"{self.change:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"


@dataclass(frozen=True)
class Evidence:
    n: int
    confidence: float
    accuracy: Interval
    macro_f1: Interval
    labels: dict[str, Interval]
    """Each dev label's F1 change."""
    new_only: int
    """Texts only the new version labels right."""
    current_only: int
    """Texts only the current version labels right (the negative flips)."""
    mcnemar_p: float

    @property
    def negative_flip_rate(self) -> float:
        return 100.0 * self.current_only / self.n

    @property
    def disagreement(self) -> float:
        """Share of the texts where exactly one of the two is right."""
        return (self.new_only + self.current_only) / self.n

    def to_dict(self) -> dict:
        out = asdict(self)
        out["negative_flip_rate"] = self.negative_flip_rate
        return out

    @staticmethod
    def from_dict(raw: dict) -> Evidence:
        return Evidence(raw["n"], raw["confidence"], Interval(**raw["accuracy"]), Interval(**raw["macro_f1"]),
                        {k: Interval(**v) for k, v in raw["labels"].items()}, raw["new_only"], raw["current_only"],
                        raw["mcnemar_p"])

    def line(self) -> str:
        pct = round(100 * self.confidence)
        return (f"accuracy {self.accuracy.text()}, macro-F1 {self.macro_f1.text()} ({pct}% intervals, "
                f"{self.n} dev texts); {self.new_only} texts fixed, {self.current_only} broken "
                f"(negative flips {self.negative_flip_rate:.1f}%), McNemar p = {self.mcnemar_p:.3g}")


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` and ``c`` texts right by only one of the two,
    under the null that each such text is as likely to go either way."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**m)


def _counts(gold: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Per text, one column each: right; then per label its true positive, false positive and
    false negative indicators (a text's contributions to that label's F1)."""
    columns = [gold == predicted]
    for label in labels:
        hit, said = gold == label, predicted == label
        columns += [hit & said, said & ~hit, hit & ~said]
    return np.column_stack(columns).astype(np.float32)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(200 * tp, denominator, out=np.zeros_like(denominator, dtype=np.float64),
                     where=denominator > 0)


def _scores(totals: np.ndarray, n: float | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy, per-label F1 (columns) and macro-F1 from summed indicator columns."""
    accuracy = 100.0 * totals[..., 0] / n
    per_label = _f1(totals[..., 1::3], totals[..., 2::3], totals[..., 3::3])
    return accuracy, per_label, per_label.mean(axis=-1) if k else np.zeros_like(accuracy)


def dev_labels(gold: Sequence[str]) -> list[str]:
    return sorted({str(g) for g in gold})


def accuracy_and_macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> tuple[float, float]:
    """One version's accuracy and macro-F1 (over the dev set's labels), points."""
    labels = dev_labels(gold)
    totals = _counts(np.asarray([str(x) for x in gold]), np.asarray([str(x) for x in predicted]), labels).sum(0)
    accuracy, _, macro = _scores(totals.astype(np.float64), len(gold), len(labels))
    return float(accuracy), float(macro)


def paired_evidence(gold: Sequence[str], new: Sequence[str], current: Sequence[str], confidence: float = 0.95,
                    resamples: int = RESAMPLES, seed: int = SEED) -> Evidence:
    """The change from ``current`` to ``new`` on the texts whose gold labels are ``gold``."""
    if not (len(gold) == len(new) == len(current)) or len(gold) == 0:
        raise ValueError(f"{len(gold)} gold labels, {len(new)} and {len(current)} predictions")
    labels = dev_labels(gold)
    g = np.asarray([str(x) for x in gold])
    a, b = np.asarray([str(x) for x in new]), np.asarray([str(x) for x in current])
    both = np.hstack([_counts(g, a, labels), _counts(g, b, labels)])
    width = both.shape[1] // 2
    n, k = len(g), len(labels)
    _, f1s_a, macro_a = _scores(both[:, :width].sum(0), n, k)
    _, f1s_b, macro_b = _scores(both[:, width:].sum(0), n, k)
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, CHUNK):
        rows = min(CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(rows, n))
        flat = (picks + (np.arange(rows) * n)[:, None]).ravel()
        weights = np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float32)
        totals = weights @ both
        ra, fa, ma = _scores(totals[:, :width], n, k)
        rb, fb, mb = _scores(totals[:, width:], n, k)
        draws.append(np.column_stack([ra - rb, ma - mb, fa - fb]))
    changes = np.vstack(draws)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(changes, [tail, 100 - tail], axis=0)

    def interval(i: int, observed: float) -> Interval:
        return Interval(round(float(observed), 4), round(float(low[i]), 4), round(float(high[i]), 4))

    right_a, right_b = a == g, b == g
    new_only, current_only = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    # the accuracy's change from the counts (3 texts of 300 is -1.0, not 64.67 - 63.67)
    return Evidence(n, confidence, interval(0, 100.0 * (int(right_a.sum()) - int(right_b.sum())) / n),
                    interval(1, macro_a - macro_b),
                    {label: interval(2 + i, f1s_a[i] - f1s_b[i]) for i, label in enumerate(labels)},
                    new_only, current_only, mcnemar_exact(new_only, current_only))


def texts_to_decide(interval: Interval, n: int, margin: float) -> int | None:
    """About how many dev texts would put ``interval`` (seen on ``n`` texts) clear of
    ``-margin`` at the change seen: its half-width toward the margin shrinks as one over the
    square root of the number of texts. None when the change sits on the margin (no dev set
    would decide) or the interval is clear of it already."""
    gap = interval.change + margin
    half = interval.change - interval.low if gap > 0 else interval.high - interval.change
    if abs(gap) < 0.05 or half <= abs(gap):
        return None
    return math.ceil(n * (half / abs(gap)) ** 2)
