"""Aggregate the done fine-tune cells into ``results.csv`` and ``summary.md``."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from controller.analysis.advice import advise, format_advice, judge, sample_agreement
from controller.analysis.advice_loo import format_leave_one_out
from controller.analysis.recipe_loo import format_recipe_choice
from controller.analysis.spread import Spread, format_shares, per_sample, setting_spread
from controller.analysis.stats import format_tests, paired_tests
from controller.plan.graph import Plan
from controller.plan.spec import ExperimentSpec
from controller.report.cache import CellCache
from controller.report.plots import accuracy_plot
from controller.run.environments import StepEnvironment, format_mixed
from jobs.contract.outputs import (
    TSNE,
    read_cluster_ids,
    read_cluster_summary,
    read_metrics,
    read_ned,
    read_sample,
)
from jobs.contract.staging import TRAIN, labeled_cluster_ids, read_split
from jobs.contract.steps import done_steps, read_record, step_prefix
from jobs.storage import Store

COLUMNS = ("dataset", "setting", "protocol", "sampling", "budget", "repetition", "copy", "accuracy", "macro_f1",
           "classes_in_sample", "sample_ami", "advice", "optimizer_steps", "train_s", "eval_s", "step")


@dataclass(frozen=True)
class Report:
    rows: tuple[dict, ...]
    missing: int
    nmi: dict[str, float | None]
    analyses: tuple[dict, ...]
    csv: str
    summary: str
    plot: bytes | None
    """accuracy.svg, when there is more than one budget to draw and it changed."""
    pictures: dict[str, str] = field(default_factory=dict)
    """t-SNE pictures to copy into the report (name -> analyze step id), those that changed."""
    mixed: tuple[str, ...] = ()
    """Markdown lines saying the committed steps come from more than one environment (or
    ran one kind on more than one device); empty when they do not."""


def report_prefix(spec: ExperimentSpec) -> str:
    return f"experiments/{spec.name}/report"


def _metrics(store: Store, prefix: str) -> dict:
    return {k: v for k, v in read_metrics(store, prefix).items() if k in COLUMNS}


def fetch(store: Store, prefixes: list[str], read: Callable[[Store, str], Any]) -> dict[str, Any]:
    """``read(store, prefix)`` of many steps at once (a report of a new grid reads thousands)."""
    if len(prefixes) < 4:
        return {p: read(store, p) for p in prefixes}
    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(prefixes, pool.map(lambda p: read(store, p), prefixes)))


def collect(store: Store, plan: Plan, done: set[str], cache: CellCache) -> tuple[list[dict], int]:
    rows, missing = [], 0
    new = fetch(store, [step_prefix(c.kind, c.step) for c in plan.cells
                        if step_prefix(c.kind, c.step) in done and not cache.has(c.step, "metrics")], _metrics)
    for cell in plan.cells:
        prefix = step_prefix(cell.kind, cell.step)
        if prefix not in done:
            missing += 1
            continue
        m = cache.of_step(cell.step, "metrics", functools.partial(new.get, prefix))
        rows.append({**{k: m.get(k) for k in COLUMNS if k in m},
                     "dataset": cell.dataset, "setting": cell.setting, "protocol": cell.protocol, "sampling": cell.sampling,
                     "budget": cell.budget, "repetition": cell.repetition, "copy": cell.copy, "step": cell.step,
                     "column": cell.column})
    return rows, missing


def _nmi(store: Store, prefix: str) -> float | None:
    value: float | None = read_cluster_summary(store, prefix).get("nmi_with_gold")
    return value


def cluster_nmi(store: Store, plan: Plan, done: set[str], cache: CellCache) -> dict[str, float | None]:
    nmi = {}
    for dataset, sid in plan.clusterings.items():
        prefix = step_prefix("cluster", sid)
        if prefix in done:
            nmi[dataset] = cache.of_step(sid, "nmi", functools.partial(_nmi, store, prefix))
    return nmi


def attach_advice(store: Store, plan: Plan, rows: list[dict], done: set[str], cache: CellCache) -> None:
    """Add ``sample_ami`` (clusters vs labels on the cell's labeled sample) and ``advice``."""
    ids: dict[str, list[int]] = {}
    labels: dict[str, tuple] = {}

    samples = fetch(store, [plan.steps[r["step"]].prefix for r in rows if (sid := plan.clusterings.get(r["dataset"]))
                            and step_prefix("cluster", sid) in done and not cache.has(r["step"], "ami", sid)],
                    read_sample)

    def agreement(row: dict, sid: str) -> float:
        if row["dataset"] not in ids:  # read only when a cell's agreement is not known yet
            train = read_split(store, plan.steps[row["step"]].inputs["dataset"], TRAIN)
            ids[row["dataset"]] = labeled_cluster_ids(read_cluster_ids(store, step_prefix("cluster", sid)),
                                                      len(train))
            labels[row["dataset"]] = train.labels
        sample = samples[plan.steps[row["step"]].prefix]
        return sample_agreement([ids[row["dataset"]][i] for i in sample], [labels[row["dataset"]][i] for i in sample])

    for row in rows:
        sid = plan.clusterings.get(row["dataset"])
        if sid is None or step_prefix("cluster", sid) not in done:
            continue
        row["sample_ami"] = cache.agreement(row["step"], sid, functools.partial(agreement, row, sid))
        row["advice"] = advise(row["sample_ami"])


def _analysis(store: Store, prefix: str) -> dict:
    return {"tsne": store.exists(f"{prefix}/{TSNE}"), **read_ned(store, prefix)}


def collect_analyses(store: Store, plan: Plan, done: set[str], cache: CellCache) -> list[dict]:
    out = []
    for dataset, start, sid in plan.analyses:
        prefix = step_prefix("analyze", sid)
        if prefix in done:
            out.append({"dataset": dataset, "inter_training": start, "step": sid,
                        **cache.of_step(sid, "analysis", functools.partial(_analysis, store, prefix))})
    return out


def cost_of(record: dict) -> dict:
    """What the page's cost table takes of a step's ``_SUCCESS`` record: seconds and device."""
    torch_version = str(record.get("versions", {}).get("torch", ""))
    device = record.get("device") or ("cpu" if "+cpu" in torch_version else "unrecorded")
    return {"seconds": record.get("seconds"), "device": device}


def _environment_and_cost(store: Store, prefix: str) -> dict:
    record = read_record(store, prefix)
    return {"env": StepEnvironment.from_json(record).to_json(), "cost": cost_of(record)}


def collect_environments(store: Store, plan: Plan, done: set[str], cache: CellCache) -> dict[str, StepEnvironment]:
    """Step id -> the environment that computed it, for the plan's committed steps. Each record
    is read once: its cost (the page's) is kept in the cache from the same read."""
    mine = [(sid, step.prefix) for sid, step in plan.steps.items() if step.prefix in done]
    new = fetch(store, [p for sid, p in mine if not cache.has(sid, "env")], _environment_and_cost)
    for sid, p in mine:
        if p in new:
            cache.of_step(sid, "cost", functools.partial(_part, new, p, "cost"))
    return {sid: StepEnvironment.from_json(cache.of_step(sid, "env", functools.partial(_part, new, p, "env")))
            for sid, p in mine}


def _part(read: dict[str, dict], prefix: str, what: str) -> dict:
    part: dict = read[prefix][what]
    return part


def mixed_environments(plan: Plan, found: dict[str, StepEnvironment], spec_path: str = "SPEC") -> list[str]:
    return format_mixed(found, lambda sid: f"{plan.steps[sid].kind} {plan.steps[sid].label}".strip(),
                        lambda sid: plan.steps[sid].kind, spec_path)


def format_analyses(analyses: list[dict]) -> list[str]:
    if not analyses:
        return []
    lines = ["", "Embedding analysis (paper section 5.3): NED = mean same-class distance / mean distance "
             "between test texts' embeddings, before and after inter-training; p: share of label "
             "permutations whose drop is at least as large.", "",
             "| dataset | inter-training | texts | NED before | NED after | drop | p | t-SNE |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for a in analyses:
        picture = f"tsne-{a['dataset']}-{a['inter_training']}.png" if a["tsne"] else "-"
        lines.append(f"| {a['dataset']} | {a['inter_training']} | {a['n_texts']} | {a['ned_before']:.3f} | "
                     f"{a['ned_after']:.3f} | {a['drop']:.3f} | {a['p_value']:.3g} | {picture} |")
    return lines


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def accuracy_table(spec: ExperimentSpec, rows: list[dict], columns: list[str]) -> list[str]:
    """Mean ± SEM per dataset, budget and column, then where the SEM of inter-trained settings
    comes from (when they were inter-trained more than once)."""
    spreads: dict[tuple[str, int, str], Spread] = {}
    lines = ["| dataset | budget | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for d in spec.datasets:
        for b in spec.budgets:
            cells = []
            for col in columns:
                mine = [r for r in rows if r["dataset"] == d.name and r["column"] == col and r["budget"] == b]
                if mine:
                    spreads[(d.name, b, col)] = setting_spread(mine)
                cells.append(spreads[(d.name, b, col)].format() if mine else "-")
            lines.append(f"| {d.name} | {b} | " + " | ".join(cells) + " |")
    return lines + format_shares(spreads)


def summarize(spec: ExperimentSpec, plan: Plan, rows: list[dict], missing: int,
              nmi: dict[str, float | None], analyses: tuple[dict, ...] = (), mixed: tuple[str, ...] = ()) -> str:
    lines = [f"# {spec.name}: accuracy (%), mean ± SEM over repetitions (and inter-training seeds)", ""]
    lines.append(f"Model `{spec.model}`; fine-tuning " + "; ".join(
        f"{p}: {spec.protocol(p).epochs:g} epochs, batch {spec.protocol(p).batch_size}, lr {spec.protocol(p).lr:g}, "
        f"max length {spec.protocol(p).max_length}" for p in spec.protocols) + ".")
    if missing:
        lines.append(f"**Incomplete:** {missing} of {missing + len(rows)} cells are not done yet.")
    lines += list(mixed)
    lines.append("")
    columns = list(dict.fromkeys(c.column for c in plan.cells))
    lines += accuracy_table(spec, rows, columns)
    samples = per_sample(rows)
    for baseline in (c for c in ("bert", "bert (strong)") if c in columns):  # each protocol's baseline
        lines += format_tests(paired_tests(samples, columns, baseline))
    if nmi:
        lines += ["", "NMI of the clusters with the gold labels (train set): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in nmi.items() if v is not None)]
    judgements = judge(samples)
    lines += format_advice(judgements) + format_leave_one_out(judgements)
    lines += format_recipe_choice(samples, list(spec.budgets))
    lines += format_analyses(list(analyses))
    return "\n".join(lines) + "\n"


def build_report(store: Store, spec: ExperimentSpec, plan: Plan, done: set[str] | None,
                 cache: CellCache) -> Report:
    """``done``: the committed steps' prefixes, when the caller has listed them already;
    ``cache``: the report's cell cache, which the page then uses too (read once)."""
    done = done_steps(store) if done is None else done
    rows, missing = collect(store, plan, done, cache)
    attach_advice(store, plan, rows, done, cache)
    nmi = cluster_nmi(store, plan, done, cache)
    analyses = collect_analyses(store, plan, done, cache)
    mixed = tuple(mixed_environments(plan, collect_environments(store, plan, done, cache)))
    plot = None
    columns = list(dict.fromkeys(c.column for c in plan.cells))
    plot_key = f"{report_prefix(spec)}/accuracy.svg"
    if len({r["budget"] for r in rows}) > 1 and not cache.unchanged(plot_key, rows, columns):
        plot = accuracy_plot(rows, [d.name for d in spec.datasets], columns)
    pictures = {f"tsne-{a['dataset']}-{a['inter_training']}.png": a["step"] for a in analyses
                if a["tsne"] and not cache.unchanged(f"{report_prefix(spec)}/tsne-{a['dataset']}-{a['inter_training']}.png",
                                                     a["step"])}
    cache.save()
    return Report(tuple(rows), missing, nmi, tuple(analyses), to_csv(rows),
                  summarize(spec, plan, rows, missing, nmi, tuple(analyses), mixed), plot, pictures, mixed)


def write_report(store: Store, spec: ExperimentSpec, report: Report) -> str:
    """Write what changed: the tables always, the plot and pictures when their inputs did."""
    prefix = report_prefix(spec)
    store.write_bytes(f"{prefix}/results.csv", report.csv.encode())
    store.write_bytes(f"{prefix}/summary.md", report.summary.encode())
    if report.plot:
        store.write_bytes(f"{prefix}/accuracy.svg", report.plot)
    for name, step in report.pictures.items():
        store.write_bytes(f"{prefix}/{name}", store.read_bytes(f"{step_prefix('analyze', step)}/{TSNE}"))
    return prefix
