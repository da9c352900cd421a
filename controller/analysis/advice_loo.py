"""Judging the advice honestly: leave one dataset out.

A threshold on the sample AMI fitted on the datasets it is then judged on looks better than
it is. Here, for each dataset and each (without, with) pair, the threshold is fitted on the
*other* datasets (the one that loses the fewest points there) and judged on the held-out
one, beside the two rules that need no fitting: always inter-train, never inter-train. The rule is worth
keeping only if, held out, it loses no more than always inter-training for every pair.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controller.analysis.advice import PAIRS, Judgement, lost

Pair = tuple[str, str]


def mean_lost(judgements: list[Judgement], choose: Callable[[Judgement], bool]) -> float:
    return float(np.mean([lost(j, choose(j)) for j in judgements])) if judgements else math.nan


def fit_threshold(judgements: list[Judgement]) -> float:
    """The AMI threshold (inter-train when AMI >= it) losing the fewest points over every
    judgement given; among equals the lowest (inter-training more often). ``-inf`` is
    "always", ``inf`` "never"."""
    amis = sorted({j.ami for j in judgements})
    candidates = [-math.inf] + [(a + b) / 2 for a, b in itertools.pairwise(amis)] + [math.inf]
    return min(candidates, key=lambda t: (mean_lost(judgements, lambda j: j.ami >= t), t))


@dataclass(frozen=True)
class HeldOut:
    dataset: str
    samples: int
    """Labeled samples judged (a sample judged on both pairs counts once)."""
    counts: dict[Pair, int]
    """Per pair: the samples judged on it."""
    thresholds: dict[Pair, float]
    """Per pair, fitted on the other datasets."""
    lost: dict[Pair, dict[str, float]]
    """Per pair: points lost on this dataset by ``rule``, ``always`` and ``never``."""
    advised: dict[Pair, float]
    """Per pair: the share of this dataset's samples the rule told to inter-train."""


def leave_one_dataset_out(judgements: list[Judgement]) -> list[HeldOut]:
    """One row per dataset with judgements; needs at least two datasets."""
    datasets = sorted({j.dataset for j in judgements})
    if len(datasets) < 2:
        return []
    out = []
    for held in datasets:
        mine = [j for j in judgements if j.dataset == held]
        thresholds, per_pair, advised, counts = {}, {}, {}, {}
        for pair in PAIRS:
            pj = [j for j in mine if j.pair == pair]
            others = [j for j in judgements if j.dataset != held and j.pair == pair]
            if pj and others:
                counts[pair] = len(pj)
                thresholds[pair] = fit_threshold(others)
                per_pair[pair], advised[pair] = _judge_held_out(pj, thresholds[pair])
        samples = {(j.budget, j.repetition, j.sampling) for j in mine}
        out.append(HeldOut(held, len(samples), counts, thresholds, per_pair, advised))
    return out


def _judge_held_out(judgements: list[Judgement], threshold: float) -> tuple[dict[str, float], float]:
    """Points lost by the rule, always and never; the share of samples the rule inter-trains."""
    def rule(j: Judgement) -> bool:
        return j.ami >= threshold

    losses = {"rule": mean_lost(judgements, rule), "always": mean_lost(judgements, lambda j: True),
              "never": mean_lost(judgements, lambda j: False)}
    return losses, float(np.mean([rule(j) for j in judgements]))


def overall(rows: list[HeldOut], pair: Pair) -> dict[str, float]:
    """Points lost per sample over every held-out dataset (each sample weighs the same)."""
    weighted = [(r.counts[pair], r.lost[pair]) for r in rows if pair in r.lost]
    total = sum(n for n, _ in weighted)
    return {k: sum(n * v[k] for n, v in weighted) / total for k in ("rule", "always", "never")} if total else {}


def keep_rule(rows: list[HeldOut]) -> bool | None:
    """Whether the held-out rule loses no more than always inter-training for every pair
    judged (None when there is nothing to judge)."""
    scores = [overall(rows, pair) for pair in PAIRS]
    scores = [s for s in scores if s]
    if not scores:
        return None
    return all(s["rule"] <= s["always"] + 1e-9 for s in scores)


def _threshold(t: float) -> str:
    return "always" if t == -math.inf else "never" if t == math.inf else f"{t:.3f}"


def format_leave_one_out(judgements: list[Judgement]) -> list[str]:
    rows = leave_one_dataset_out(judgements)
    if not rows:
        return []
    pairs = [p for p in PAIRS if overall(rows, p)]
    head = " | ".join(f"{a} vs {b}: threshold (advised) | lost: rule / always / never" for a, b in pairs)
    lines = ["", "Advice judged leave-one-dataset-out: per pair, the AMI threshold is fitted on the other "
             "datasets, then judged on the held-out one (advised: its share of samples told to inter-train); "
             "points lost against the better of the pair, per sample.", "",
             f"| held-out dataset | samples | {head} |", "|---|---:|" + "---:|---:|" * len(pairs)]
    for r in rows:
        cells = [f"{_threshold(r.thresholds[p])} ({100 * r.advised[p]:.0f}%) | "
                 + " / ".join(f"{r.lost[p][k]:.2f}" for k in ("rule", "always", "never")) if p in r.lost else "- | -"
                 for p in pairs]
        lines.append(f"| {r.dataset} | {r.samples} | " + " | ".join(cells) + " |")
    totals = [" | " + " / ".join(f"**{overall(rows, p)[k]:.2f}**" for k in ("rule", "always", "never")) for p in pairs]
    lines.append(f"| all | {sum(r.samples for r in rows)} | " + " | ".join(totals) + " |")
    verdict = keep_rule(rows)
    lines.append("")
    lines.append("Held out, the rule loses no more than always inter-training for every pair: keep it."
                 if verdict else "Held out, the rule loses more than always inter-training for at least one pair: "
                 "always inter-train, and read the AMI as information.")
    return lines
