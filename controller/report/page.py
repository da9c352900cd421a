"""Gather what the report page shows (``controller.report.html``) and write it beside the
other report files: ``index.html``, and ``results.json``, the JSON twin of ``results.csv``.

What is read of a committed step (its clusters, its ``_SUCCESS`` timings) is read once and
kept in the report's cell cache, like the metrics.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from controller.analysis.spread import per_sample
from controller.analysis.stats import paired_tests
from controller.plan.graph import Plan
from controller.plan.spec import ExperimentSpec
from controller.report.cache import CellCache
from controller.report.html import DatasetDetail, Page, render
from controller.report.paper_tables import (
    baselines,
    costs,
    dataset_group,
    inter_trained_column,
    nmi_points,
    planned_counts,
    table2,
)
from controller.report.plot_nmi import nmi_gain_plot
from controller.report.plots import accuracy_plot
from controller.report.results import COLUMNS, Report, cost_of, fetch, report_prefix
from controller.run.runstate import RunState, run_state
from jobs.contract.outputs import TSNE, read_cluster_summary
from jobs.contract.steps import read_record, step_prefix
from jobs.storage import Store

LARGEST = 8
"""Clusters shown per dataset, largest first."""
PAGE, JSON = "index.html", "results.json"


def _clusters(store: Store, prefix: str) -> dict:
    s = read_cluster_summary(store, prefix)
    sizes = [int(n) for n in s.get("sizes", [])]
    terms = s.get("top_terms", {}) or {}
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])[:LARGEST]
    return {"nmi": s.get("nmi_with_gold"), "sizes": sizes,
            "largest": [[str(i), sizes[i], list(terms.get(str(i), []))[:10]] for i in order]}


def _cost(store: Store, prefix: str) -> dict:
    return cost_of(read_record(store, prefix))


def step_costs(store: Store, plan: Plan, done: frozenset[str] | set[str], cache: CellCache) -> list[dict]:
    """Per done step: its kind, seconds and device (read once per step, then from the cache)."""
    mine = [(sid, s.prefix, s.kind) for sid, s in plan.steps.items() if s.prefix in done]
    new = fetch(store, [p for sid, p, _ in mine if not cache.has(sid, "cost")], _cost)
    return [{**cache.of_step(sid, "cost", functools.partial(new.get, p)), "kind": kind} for sid, p, kind in mine]


def dataset_details(store: Store, spec: ExperimentSpec, plan: Plan, report: Report, done: frozenset[str] | set[str],
                    cache: CellCache) -> tuple[DatasetDetail, ...]:
    out = []
    for d in spec.datasets:
        sid = plan.clusterings.get(d.name)
        info: dict[str, Any] = {}
        if sid and step_prefix("cluster", sid) in done:
            info = cache.of_step(sid, "clusters", functools.partial(_clusters, store, step_prefix("cluster", sid)))
        analyses = [a for a in report.analyses if a["dataset"] == d.name]
        tsne = tuple((str(a["inter_training"]), store.read_bytes(f"{step_prefix('analyze', a['step'])}/{TSNE}"))
                     for a in analyses if a.get("tsne"))
        out.append(DatasetDetail(d.name, dataset_group(d.name, d.group), info.get("nmi"), tuple(info.get("sizes", ())),
                                 tuple((c, n, tuple(t)) for c, n, t in info.get("largest", ())), tuple(analyses), tsne))
    return tuple(out)


def build_page(store: Store, spec: ExperimentSpec, plan: Plan, report: Report, state: RunState,
               cache: CellCache) -> Page:
    rows = list(report.rows)
    columns = list(dict.fromkeys(c.column for c in plan.cells))
    datasets = [(d.name, dataset_group(d.name, d.group)) for d in spec.datasets]
    budgets = list(spec.budgets)
    planned = planned_counts(plan.cells)
    gains = {b: table2(rows, datasets, budgets, columns, b, planned) for b in baselines(columns)}
    samples = per_sample(rows)
    tests = {b: paired_tests(samples, columns, b) for b in baselines(columns)}
    nmi_svg, points = None, []
    for b in baselines(columns):
        points = nmi_points(rows, report.nmi, budgets, columns, b)
        if points:
            nmi_svg = nmi_gain_plot(points, inter_trained_column(columns, b) or "", b, min(budgets))
            break
    details = dataset_details(store, spec, plan, report, state.done_prefixes, cache)
    spent = costs(step_costs(store, plan, state.done_prefixes, cache))
    cache.save()
    return Page(spec.name, spec.model, store.root, state, gains, tests,
                accuracy_plot(rows, [d.name for d in spec.datasets], columns, budgets), nmi_svg, details, tuple(spent),
                report.summary, tuple(points), report.mixed)


def results_json(spec: ExperimentSpec, report: Report) -> str:
    """The rows of ``results.csv`` with their types (numbers as numbers, missing as null)."""
    rows = [{k: r.get(k) for k in COLUMNS} for r in report.rows]
    return json.dumps({"experiment": spec.name, "columns": list(COLUMNS), "rows": rows,
                       "cells_not_done": report.missing}, indent=1) + "\n"


def write_page(store: Store, spec: ExperimentSpec, plan: Plan, report: Report,
               seen_failed: dict[str, str] | None, committed: set[str] | None, cache: CellCache) -> str:
    """Write ``index.html`` and ``results.json``; the page's key in the store."""
    state = run_state(store, plan, seen_failed, committed)
    page = build_page(store, spec, plan, report, state, cache)
    prefix = report_prefix(spec)
    store.write_bytes(f"{prefix}/{JSON}", results_json(spec, report).encode())
    store.write_bytes(f"{prefix}/{PAGE}", render(page).encode())
    return f"{prefix}/{PAGE}"
