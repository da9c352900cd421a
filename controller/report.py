"""Aggregate the done fine-tune cells into ``results.csv`` and ``summary.md``."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass

from controller.plan import Plan
from controller.spec import ExperimentSpec
from controller.plots import accuracy_plot
from controller.stats import format_tests, mean_sem, paired_tests
from jobs.step import is_done, step_prefix
from jobs.storage import Store

COLUMNS = ("dataset", "setting", "protocol", "sampling", "budget", "repetition", "accuracy", "macro_f1",
           "classes_in_sample", "optimizer_steps", "train_s", "eval_s", "step")


@dataclass(frozen=True)
class Report:
    rows: tuple[dict, ...]
    missing: int
    nmi: dict[str, float | None]
    csv: str
    summary: str
    plot: bytes | None
    """accuracy.png, when there is more than one budget to draw."""


def report_prefix(spec: ExperimentSpec) -> str:
    return f"experiments/{spec.name}/report"


def collect(store: Store, plan: Plan) -> tuple[list[dict], int]:
    rows, missing = [], 0
    for cell in plan.cells:
        prefix = step_prefix(cell.kind, cell.step)
        if not is_done(store, prefix):
            missing += 1
            continue
        m = json.loads(store.read_bytes(f"{prefix}/metrics.json"))
        rows.append({**{k: m.get(k) for k in COLUMNS if k in m},
                     "dataset": cell.dataset, "setting": cell.setting, "protocol": cell.protocol, "sampling": cell.sampling,
                     "budget": cell.budget, "repetition": cell.repetition, "step": cell.step,
                     "column": cell.column})
    return rows, missing


def cluster_nmi(store: Store, plan: Plan) -> dict[str, float | None]:
    nmi = {}
    for dataset, sid in plan.clusterings.items():
        prefix = step_prefix("cluster", sid)
        if is_done(store, prefix):
            nmi[dataset] = json.loads(store.read_bytes(f"{prefix}/clusters.json")).get("nmi_with_gold")
    return nmi


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    mean, sem = mean_sem([100 * v for v in values])
    return f"{mean:.1f} ± {sem:.1f} (n={len(values)})" if not math.isnan(sem) else f"{mean:.1f} (n=1)"


def summarize(spec: ExperimentSpec, plan: Plan, rows: list[dict], missing: int,
              nmi: dict[str, float | None]) -> str:
    lines = [f"# {spec.name}: accuracy (%), mean ± SEM over repetitions", ""]
    protocols = {"paper": spec.finetune, "strong": spec.strong}
    lines.append(f"Model `{spec.model}`; fine-tuning " + "; ".join(
        f"{p}: {protocols[p].epochs:g} epochs, batch {protocols[p].batch_size}, lr {protocols[p].lr:g}, "
        f"max length {protocols[p].max_length}" for p in spec.protocols) + ".")
    if missing:
        lines.append(f"**Incomplete:** {missing} of {missing + len(rows)} cells are not done yet.")
    lines.append("")
    columns = list(dict.fromkeys(c.column for c in plan.cells))
    lines.append("| dataset | budget | " + " | ".join(columns) + " |")
    lines.append("|---|---:|" + "---:|" * len(columns))
    for d in spec.datasets:
        for b in spec.budgets:
            cells = []
            for col in columns:
                acc = [r["accuracy"] for r in rows if r["dataset"] == d.name and r["column"] == col and r["budget"] == b]
                cells.append(_fmt(acc))
            lines.append(f"| {d.name} | {b} | " + " | ".join(cells) + " |")
    if "bert" in columns:
        lines += format_tests(paired_tests(rows, columns, "bert"))
    if nmi:
        lines += ["", "NMI of the clusters with the gold labels (train set): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in nmi.items() if v is not None)]
    return "\n".join(lines) + "\n"


def build_report(store: Store, spec: ExperimentSpec, plan: Plan) -> Report:
    rows, missing = collect(store, plan)
    nmi = cluster_nmi(store, plan)
    plot = None
    if len({r["budget"] for r in rows}) > 1:
        plot = accuracy_plot(rows, [d.name for d in spec.datasets], list(dict.fromkeys(c.column for c in plan.cells)))
    return Report(tuple(rows), missing, nmi, to_csv(rows), summarize(spec, plan, rows, missing, nmi), plot)


def write_report(store: Store, spec: ExperimentSpec, report: Report) -> str:
    prefix = report_prefix(spec)
    store.write_bytes(f"{prefix}/results.csv", report.csv.encode())
    store.write_bytes(f"{prefix}/summary.md", report.summary.encode())
    if report.plot:
        store.write_bytes(f"{prefix}/accuracy.png", report.plot)
    return prefix
