"""The paper's Table 2 (gain and error reduction over BERT, with topical and non-topical
averages) and the points of its Figure 4 (clusters' NMI with the labels against the gain
from inter-training), from the report's rows. Pure functions: the page renders them.

Error reduction is the paper's: the share of the baseline's errors the setting removes,
``(accuracy - baseline) / (100 - baseline)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from controller.analysis.spread import Spread, setting_spread

TOPICAL, NON_TOPICAL, OTHER = "topical", "non-topical", "other"
SHIPPED_GROUPS = {"ag_news": TOPICAL, "dbpedia": TOPICAL, "20newsgroups": TOPICAL, "isear": TOPICAL,
                  "sms_spam": NON_TOPICAL, "polarity": NON_TOPICAL}
"""The groups of the shipped datasets (the data README's "type (paper)")."""


def dataset_group(name: str, declared: str | None) -> str:
    return declared or SHIPPED_GROUPS.get(name, OTHER)


@dataclass(frozen=True)
class GainCell:
    column: str
    mean: float | None
    """Mean accuracy (%) of the done cells; None when none is done (pending)."""
    sem: float
    done: int
    planned: int
    gain: float | None = None
    """Points over the baseline's mean (None: either is pending)."""
    error_reduction: float | None = None
    """Per cent of the baseline's errors removed."""

    @property
    def pending(self) -> bool:
        return self.done < self.planned


@dataclass(frozen=True)
class GainRow:
    dataset: str
    """A dataset's name, or ``"<group> average"``."""
    group: str
    budget: int
    baseline: GainCell
    cells: tuple[GainCell, ...]
    datasets: int = 1
    """How many datasets an average row averages."""


def error_reduction(accuracy: float, baseline: float) -> float | None:
    return None if baseline >= 100 else 100 * (accuracy - baseline) / (100 - baseline)


def _cell(column: str, rows: list[dict], planned: int, base: float | None) -> GainCell:
    if not rows:
        return GainCell(column, None, math.nan, 0, planned)
    s: Spread = setting_spread(rows)
    gain = None if base is None else s.mean - base
    return GainCell(column, s.mean, s.sem, len(rows), planned, gain,
                    None if base is None else error_reduction(s.mean, base))


def planned_counts(cells: Iterable) -> dict[tuple[str, int, str], int]:
    """(dataset, budget, column) -> how many cells the plan has (``controller.plan.graph.Cell``)."""
    out: dict[tuple[str, int, str], int] = {}
    for c in cells:
        out[(c.dataset, c.budget, c.column)] = out.get((c.dataset, c.budget, c.column), 0) + 1
    return out


def table2(rows: list[dict], datasets: list[tuple[str, str]], budgets: list[int], columns: list[str],
           baseline: str, planned: dict[tuple[str, int, str], int]) -> list[GainRow]:
    """Per (dataset, group) and budget: the baseline column and every other column with its
    gain and error reduction; then per group and budget the average over its datasets."""
    by_key: dict[tuple[str, int, str], list[dict]] = {}
    for r in rows:
        by_key.setdefault((r["dataset"], r["budget"], r["column"]), []).append(r)
    others = [c for c in columns if c != baseline]
    out = []
    for name, group in datasets:
        for b in budgets:
            base = _cell(baseline, by_key.get((name, b, baseline), []), planned.get((name, b, baseline), 0), None)
            cells = tuple(_cell(c, by_key.get((name, b, c), []), planned.get((name, b, c), 0), base.mean)
                          for c in others)
            out.append(GainRow(name, group, b, base, cells))
    return out + group_averages(out, budgets)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _average_cell(cells: list[GainCell], planned: int) -> GainCell:
    """The mean over datasets of one column's cells, counting those done on both sides."""
    both = [c for c in cells if c.gain is not None]
    return GainCell(cells[0].column, _mean([c.mean for c in both if c.mean is not None]), math.nan, len(both), planned,
                    _mean([c.gain for c in both if c.gain is not None]),
                    _mean([c.error_reduction for c in both if c.error_reduction is not None]))


def group_averages(rows: list[GainRow], budgets: list[int]) -> list[GainRow]:
    """Per group with more than one dataset, per budget: the mean over its datasets of the
    accuracies, gains and error reductions (a dataset counts where both sides are done)."""
    out = []
    for group in dict.fromkeys(r.group for r in rows):
        for b in budgets:
            mine = [r for r in rows if r.group == group and r.budget == b]
            if len(mine) < 2:
                continue
            bases = [r.baseline.mean for r in mine if r.baseline.mean is not None]
            base = GainCell(mine[0].baseline.column, _mean(bases), math.nan, len(bases), len(mine))
            cells = tuple(_average_cell([r.cells[j] for r in mine], len(mine)) for j in range(len(mine[0].cells)))
            out.append(GainRow(f"{group} average", group, b, base, cells, datasets=len(mine)))
    return out


def baselines(columns: list[str]) -> list[str]:
    """The baselines the gains are taken against: each protocol's bert that the grid has."""
    return [c for c in ("bert", "bert (strong)") if c in columns]


@dataclass(frozen=True)
class NmiPoint:
    dataset: str
    nmi: float
    gain: float
    """Points the inter-trained column adds over the baseline at the smallest budget."""
    ami: float | None
    """The advice's agreement: mean over the cells' labeled samples, when known."""


def inter_trained_column(columns: list[str], baseline: str) -> str | None:
    """``clust`` under the baseline's protocol (the paper's Figure 4), when the grid has it."""
    wanted = "clust" + baseline[len("bert"):]
    return wanted if wanted in columns else None


def _point(rows: list[dict], dataset: str, nmi: float, baseline: str, column: str) -> NmiPoint | None:
    mine = [r for r in rows if r["dataset"] == dataset]
    base = [r for r in mine if r["column"] == baseline]
    inter = [r for r in mine if r["column"] == column]
    if not base or not inter:
        return None
    amis = [float(r["sample_ami"]) for r in mine if r.get("sample_ami") is not None]
    return NmiPoint(dataset, nmi, setting_spread(inter).mean - setting_spread(base).mean, _mean(amis))


def nmi_points(rows: list[dict], nmi: dict[str, float | None], budgets: list[int], columns: list[str],
               baseline: str) -> list[NmiPoint]:
    """Figure 4's points: per dataset with clusters, at the smallest budget."""
    column = inter_trained_column(columns, baseline)
    if column is None or not budgets:
        return []
    smallest = [r for r in rows if r["budget"] == min(budgets)]
    points = [_point(smallest, d, float(v), baseline, column) for d, v in nmi.items() if v is not None]
    return [p for p in points if p is not None]


@dataclass(frozen=True)
class KindCost:
    kind: str
    steps: int
    seconds: float
    device: str


def costs(records: Iterable[dict]) -> list[KindCost]:
    """Seconds per step kind and device, from the ``_SUCCESS`` records (``kind``, ``seconds``,
    ``device``) of the done steps."""
    total: dict[tuple[str, str], list[float]] = {}
    for r in records:
        total.setdefault((str(r.get("kind")), str(r.get("device") or "unrecorded")), []).append(
            float(r.get("seconds") or 0.0))
    return [KindCost(kind, len(v), sum(v), device) for (kind, device), v in total.items()]
