"""Advice from the labels at hand: will cluster inter-training help on this dataset?

The paper finds that the gain follows the agreement between the clusters and the task's
labels (Figure 4: low NMI, no gain). A practitioner cannot measure that agreement on the
corpus, but can on the few texts already labeled. On 64 texts spread over 50 clusters the
plain NMI is high by chance alone (most clusters hold one labeled text), so the estimate
used is the adjusted mutual information (AMI), which is 0 in expectation for unrelated
labelings whatever the sample size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.analysis.agreement import ami

THRESHOLD = 0.12
"""``auto``: inter-train when the sample AMI is at least this; calibrated in-sample on the
shipped datasets at 64 labels. Judged leave-one-dataset-out it lost more points than always
inter-training (controller.analysis.advice_loo; README, "Advice"), so it is not the default."""

RULE_FINDING = ("not a recommendation: judged leave one dataset out on the six shipped datasets, the rule "
                "lost more points than always inter-training for the probe pair (1.59 against 0.47 a sample "
                "at 64 labels, 1.56 against 1.11 at 256), so ctune train always inter-trains unless asked "
                "for --setting auto")
"""What the project found of the rule, said wherever the rule is shown."""

PAIRS = (("bert", "clust"), ("probe", "clust+probe"))
"""(without, with) cluster inter-training: the comparisons the advice is judged on."""


def sample_agreement(cluster_ids, labels) -> float:
    """AMI between the cluster ids and the gold labels of the labeled texts."""
    if len(cluster_ids) != len(labels):
        raise ValueError("one cluster id per labeled text is needed")
    if len(set(labels)) < 2:
        return 0.0
    return ami(list(labels), list(cluster_ids))


def advise(ami: float, threshold: float = THRESHOLD) -> str:
    """``clust`` (inter-train on the clusters) or ``bert`` (fine-tune the base encoder)."""
    return "clust" if ami >= threshold else "bert"


@dataclass(frozen=True)
class Judgement:
    dataset: str
    budget: int
    repetition: int
    sampling: str
    protocol: str
    pair: tuple[str, str]
    ami: float
    advice: str
    without: float
    with_clust: float

    @property
    def better(self) -> str:
        return "clust" if self.with_clust > self.without else "bert"

    @property
    def match(self) -> bool:
        return self.advice == self.better


def judge(rows: list[dict], threshold: float = THRESHOLD) -> list[Judgement]:
    """For each sample and (without, with) pair present in ``rows``: the advice against the
    measured better of the two. Rows need ``sample_ami`` (see report.attach_advice)."""
    index = {(r["dataset"], r["budget"], r["repetition"], r["sampling"], r["protocol"], r["setting"]): r
             for r in rows}
    out = []
    for r in rows:
        for without, with_clust in PAIRS:
            if r["setting"] != without or r.get("sample_ami") is None:
                continue
            other = index.get((r["dataset"], r["budget"], r["repetition"], r["sampling"], r["protocol"], with_clust))
            if other is None:
                continue
            out.append(Judgement(r["dataset"], r["budget"], r["repetition"], r["sampling"], r["protocol"],
                                 (without, with_clust), r["sample_ami"], advise(r["sample_ami"], threshold),
                                 r["accuracy"], other["accuracy"]))
    return out


def format_advice(judgements: list[Judgement]) -> list[str]:
    if not judgements:
        return []
    lines = ["", f"Advice (inter-train when the clusters' AMI with the labeled sample is at least {THRESHOLD}; "
             f"{RULE_FINDING}): per dataset, the mean sample AMI, the advice, and how often it names the better "
             "of each pair.", "",
             "| dataset | budget | sample AMI | advice | " + " | ".join(
                 f"{a} vs {b}" for a, b in PAIRS) + " |", "|---|---:|---:|---|" + "---|" * len(PAIRS)]
    keys = sorted({(j.dataset, j.budget) for j in judgements}, key=lambda k: (k[1], k[0]))
    lines += [_advice_row(dataset, budget, [j for j in judgements if (j.dataset, j.budget) == (dataset, budget)])
              for dataset, budget in keys]
    total = sum(j.match for j in judgements)
    lines.append(f"\nThe advice names the better of the pair in {total} of {len(judgements)} comparisons "
                 f"({100 * total / len(judgements):.0f}%).")
    for pair in PAIRS:
        pj = [j for j in judgements if j.pair == pair]
        if pj:
            lines.append(f"{pair[0]} vs {pair[1]}: points lost against the better of the two, on average: "
                         f"following the advice {_regret(pj, lambda j: j.advice):.2f}, "
                         f"always inter-training {_regret(pj, lambda j: 'clust'):.2f}, "
                         f"never {_regret(pj, lambda j: 'bert'):.2f}.")
    return lines


def _advice_row(dataset: str, budget: int, js: list[Judgement]) -> str:
    """One dataset and budget: mean sample AMI, the advice of the majority, matches per pair."""
    amis = {(j.repetition, j.sampling): j.ami for j in js}
    advice = [advise(a) for a in amis.values()]
    cells = []
    for pair in PAIRS:
        pj = [j for j in js if j.pair == pair]
        cells.append(f"{sum(j.match for j in pj)}/{len(pj)}" if pj else "-")
    majority = "clust" if advice.count("clust") * 2 > len(advice) else "bert"
    return (f"| {dataset} | {budget} | {np.mean(list(amis.values())):.3f} | {majority} "
            f"({advice.count('clust')}/{len(advice)} clust) | " + " | ".join(cells) + " |")


def lost(j: Judgement, inter_train: bool) -> float:
    """Points lost against the better of the pair, had the choice been ``inter_train``."""
    chosen = j.with_clust if inter_train else j.without
    return 100 * (max(j.without, j.with_clust) - chosen)


def _regret(judgements: list[Judgement], choose) -> float:
    return float(np.mean([lost(j, choose(j) == "clust") for j in judgements]))
