"""Which setting to run by default, chosen and judged leave one dataset out.

A default recipe is good when no dataset falls far below the best that the grid found for
it. Chosen on the datasets it is then judged on, any choice looks better than it is; so for
each dataset the recipe is chosen on the *other* datasets (the setting whose worst shortfall
there is smallest; then the smallest mean shortfall) and judged on the held-out one: how
many points it falls below that dataset's best setting. Only random samples count (a
cluster-spread sample is a different question, reported apart), and only settings measured
on every dataset of the budget are candidates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

TOLERANCE = 1.0
"""Points below a dataset's best that a default recipe may fall (the issue's bar)."""


@dataclass(frozen=True)
class HeldOutRecipe:
    dataset: str
    chosen: str
    """Chosen on the other datasets."""
    fitted_worst: float
    """Its worst shortfall on the other datasets (points)."""
    shortfall: float
    """Points the chosen setting falls below this dataset's best setting."""
    best: str


def dataset_means(samples: list[dict], budget: int) -> dict[str, dict[str, float]]:
    """dataset -> column -> mean accuracy (points) over the random samples at ``budget``
    (``samples``: one row per labeled sample and setting, copies of the encoder averaged)."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in samples:
        if int(r["budget"]) == budget and (r.get("sampling") or "random") == "random":
            acc[(r["dataset"], r["column"])].append(100 * float(r["accuracy"]))
    means: dict[str, dict[str, float]] = defaultdict(dict)
    for (dataset, column), values in acc.items():
        means[dataset][column] = float(np.mean(values))
    return dict(means)


def candidates(means: dict[str, dict[str, float]]) -> list[str]:
    """Settings measured on every dataset, in the order first seen."""
    columns = [c for m in means.values() for c in m]
    return [c for c in dict.fromkeys(columns) if all(c in m for m in means.values())]


def shortfalls(means: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """dataset -> column -> points below that dataset's best column."""
    return {d: {c: max(m.values()) - v for c, v in m.items()} for d, m in means.items()}


def choose(short: dict[str, dict[str, float]], among: list[str]) -> tuple[str, float]:
    """The column whose worst shortfall over ``short``'s datasets is smallest (then the mean,
    then the name), with that worst shortfall."""
    def score(c: str) -> tuple[float, float, str]:
        values = [s[c] for s in short.values()]
        return max(values), float(np.mean(values)), c

    best = min(among, key=score)
    return best, score(best)[0]


def leave_one_dataset_out(means: dict[str, dict[str, float]]) -> list[HeldOutRecipe]:
    """One row per dataset; none with fewer than three datasets (choosing on one other
    dataset is not a choice worth judging) or no candidate."""
    among = candidates(means)
    if len(means) < 3 or not among:
        return []
    short = shortfalls(means)
    rows = []
    for held in sorted(means):
        chosen, worst = choose({d: s for d, s in short.items() if d != held}, among)
        best = max(means[held], key=lambda c: means[held][c])
        rows.append(HeldOutRecipe(held, chosen, worst, short[held][chosen], best))
    return rows


def format_recipe_choice(samples: list[dict], budgets: list[int]) -> list[str]:
    """The summary's section: per budget, the held-out table, the recipe chosen on every
    dataset, and whether held out it stayed within ``TOLERANCE`` of each dataset's best."""
    lines: list[str] = []
    for budget in budgets:
        means = dataset_means(samples, budget)
        rows = leave_one_dataset_out(means)
        if not rows:
            continue
        among = candidates(means)
        overall, worst = choose(shortfalls(means), among)
        left_out = sorted({c for m in means.values() for c in m} - set(among))
        lines += ["", f"Default recipe at {budget} labels, chosen leave-one-dataset-out: for each dataset, the "
                  "setting with the smallest worst shortfall (points below a dataset's best setting) on the "
                  f"other datasets, judged on the held-out one. Candidates: {', '.join(among)}"
                  + (f" (not measured on every dataset, so not candidates: {', '.join(left_out)})" if left_out else "")
                  + ".", "",
                  "| held-out dataset | chosen on the others | its worst shortfall there | held-out best | "
                  "held-out shortfall |", "|---|---|---:|---|---:|"]
        for r in rows:
            lines.append(f"| {r.dataset} | {r.chosen} | {r.fitted_worst:.1f} | {r.best} | {r.shortfall:.1f} |")
        held = [r.shortfall for r in rows]
        within = sum(s <= TOLERANCE + 1e-9 for s in held)
        lines += ["", f"Held out, the chosen recipe fell {np.mean(held):.1f} points below the best on average "
                  f"(worst {max(held):.1f}); within {TOLERANCE:g} point of the best on {within} of {len(rows)} "
                  f"datasets. Chosen on all {len(means)}: **{overall}** (worst shortfall {worst:.1f})."]
    return lines
