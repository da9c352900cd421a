"""The report as one self-contained HTML page: the run's state, the paper's Tables 2 and 3,
Figures 2 and 4, per-dataset clusters, NED and t-SNE, and the cost. Pure: ``render(Page)``
returns the page; ``controller.report.page`` gathers what it shows. Figures are inline SVG
or base64 PNG, the style sheet is inline: nothing is fetched when the page opens.
"""

from __future__ import annotations

import base64
import math
import re
import time
from dataclasses import dataclass, field
from html import escape

from controller.analysis.advice import RULE_FINDING, THRESHOLD
from controller.analysis.stats import PairedTest
from controller.report.paper_tables import GainCell, GainRow, KindCost, NmiPoint
from controller.run.runstate import STATES, RunState

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.pending{color:#999;font-style:italic;background:#fafafa}td.partial{background:#fffbe6}
tr.average td{font-weight:600;background:#f7f7fb}.up{color:#1a7f37}.down{color:#b42318}
.state-failed{color:#b42318;font-weight:600}.state-running{color:#0969da;font-weight:600}
figure{margin:8px 0 20px}figure svg,figure img{max-width:100%;height:auto;border:1px solid #eee}
.mixed{border:2px solid #b42318;background:#fff5f5;padding:4px 12px;margin:12px 0}
.muted{color:#777}pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
"""


@dataclass(frozen=True)
class DatasetDetail:
    name: str
    group: str
    nmi: float | None = None
    sizes: tuple[int, ...] = ()
    largest: tuple[tuple[str, int, tuple[str, ...]], ...] = ()
    """(cluster, size, top stems) of the largest clusters."""
    ned: tuple[dict, ...] = ()
    tsne: tuple[tuple[str, bytes], ...] = ()
    """(inter-training, PNG) pictures."""


@dataclass(frozen=True)
class Page:
    name: str
    model: str
    store: str
    state: RunState
    table2: dict[str, list[GainRow]]
    """Baseline column -> rows."""
    tests: dict[str, list[PairedTest]]
    accuracy_svg: bytes
    nmi_svg: bytes | None
    details: tuple[DatasetDetail, ...]
    costs: tuple[KindCost, ...]
    summary_md: str
    nmi_points: tuple[NmiPoint, ...] = ()
    mixed: tuple[str, ...] = ()
    """The report's lines on mixed environments or devices (markdown), shown first when any."""
    generated: float = field(default_factory=time.time)
    link_base: str = "../../../"
    """From the page to the store's root (the page lies at ``experiments/<name>/report/``)."""


def _num(value: float | None, fmt: str = ".1f", signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+{fmt}}" if signed else f"{value:{fmt}}"


def _acc_cell(c: GainCell, with_sem: bool = True) -> str:
    if c.mean is None:
        return f'<td class="pending" data-pending="1">pending (0/{c.planned})</td>'
    sem = f" ± {c.sem:.1f}" if with_sem and not math.isnan(c.sem) else ""
    if c.pending:
        return (f'<td class="num partial" data-pending="1" title="{c.done} of {c.planned} done">'
                f'{c.mean:.1f}{sem} <span class="muted">({c.done}/{c.planned})</span></td>')
    return f'<td class="num">{c.mean:.1f}{sem}</td>'


def _gain_cells(c: GainCell) -> str:
    if c.gain is None:
        pending = ' data-pending="1"' if c.pending else ""
        return f'<td class="pending"{pending}>-</td><td class="pending"{pending}>-</td>'
    cls = "up" if c.gain > 0 else "down" if c.gain < 0 else ""
    return (f'<td class="num {cls}">{_num(c.gain, signed=True)}</td>'
            f'<td class="num {cls}">{_num(c.error_reduction, ".0f", signed=True)}%</td>')


def render_table2(baseline: str, rows: list[GainRow]) -> str:
    if not rows:
        return ""
    others = [c.column for c in rows[0].cells]
    head = ("<tr><th rowspan=2>dataset</th><th rowspan=2>group</th><th rowspan=2>budget</th>"
            f"<th rowspan=2>{escape(baseline)}</th>"
            + "".join(f"<th colspan=3>{escape(c)}</th>" for c in others) + "</tr><tr>"
            + "<th>accuracy</th><th>gain</th><th>error red.</th>" * len(others) + "</tr>")
    body = []
    for r in rows:
        average = r.dataset.endswith(" average")
        name = f"{escape(r.dataset)} <span class='muted'>({r.datasets} datasets)</span>" if average else escape(r.dataset)
        cells = "".join(_acc_cell(c, not average) + _gain_cells(c) for c in r.cells)
        body.append(f'<tr class="{"average" if average else "dataset"}"><td>{name}</td><td>{escape(r.group)}</td>'
                    f'<td class="num">{r.budget}</td>{_acc_cell(r.baseline, not average)}{cells}</tr>')
    return (f'<table class="table2" data-baseline="{escape(baseline)}"><thead>{head}</thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def render_tests(tests: list[PairedTest]) -> str:
    if not tests:
        return '<p class="muted">No paired t-test yet: it needs two samples done in both settings.</p>'
    rows = "".join(f'<tr><td>{escape(t.column)}</td><td class="num">{t.budget}</td><td class="num">{t.pairs}</td>'
                   f'<td class="num">{t.mean_diff:+.1f}</td><td class="num">{t.p:.2g}{" *" if t.p < 0.05 else ""}</td></tr>'
                   for t in tests)
    return ('<table class="tests"><thead><tr><th>setting</th><th>budget</th><th>pairs</th>'
            '<th>mean difference (points)</th><th>p (Bonferroni)</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def render_state(state: RunState, link_base: str) -> str:
    rows = "".join(f"<tr><td>{escape(kind)}</td>" + "".join(f'<td class="num state-{s.replace(" ", "-")}">{c[s]}</td>'
                                                             for s in STATES) + "</tr>"
                   for kind, c in state.counts.items())
    total = state.total
    rows += "<tr class='average'><td>all</td>" + "".join(f'<td class="num">{total[s]}</td>' for s in STATES) + "</tr>"
    out = [f'<table class="state"><thead><tr><th>step kind</th>{"".join(f"<th>{s}</th>" for s in STATES)}</tr></thead>'
           f"<tbody>{rows}</tbody></table>"]
    if state.running:
        items = "".join(f"<li>{escape(s.kind)} <code>{escape(s.step)}</code> {escape(s.label)}: "
                        f"{escape(s.progress.line()) if s.progress else 'started'}{_log_link(s.log, link_base)}</li>"
                        for s in state.running)
        out.append(f'<h3>Running</h3><ul class="running">{items}</ul>')
    if state.failed:
        items = "".join(f'<li class="state-failed">{escape(s.kind)} <code>{escape(s.step)}</code> {escape(s.label)}: '
                        f"{escape(s.error)}{_log_link(s.log, link_base)}</li>" for s in state.failed)
        out.append(f'<h3>Failed</h3><ul class="failed">{items}</ul>')
    return "".join(out)


def _log_link(key: str | None, base: str) -> str:
    return f' (<a href="{escape(base + key)}">log</a>)' if key else ""


def render_details(details: tuple[DatasetDetail, ...]) -> str:
    out = []
    for d in details:
        out.append(f'<section class="dataset" data-dataset="{escape(d.name)}"><h3>{escape(d.name)} '
                   f'<span class="muted">({escape(d.group)}; NMI with gold {_num(d.nmi, ".3f")})</span></h3>')
        if d.sizes:
            out.append(f"<p>{len(d.sizes)} clusters; sizes {min(d.sizes)}..{max(d.sizes)} "
                       f"(median {sorted(d.sizes)[len(d.sizes) // 2]}).</p>")
        if d.largest:
            rows = "".join(f'<tr><td class="num">{escape(c)}</td><td class="num">{n}</td><td>{escape(", ".join(t))}</td></tr>'
                           for c, n, t in d.largest)
            out.append('<table class="clusters"><thead><tr><th>cluster</th><th>texts</th><th>top stems</th></tr></thead>'
                       f"<tbody>{rows}</tbody></table>")
        if d.ned:
            rows = "".join(f"<tr><td>{escape(str(a['inter_training']))}</td><td class='num'>{a['n_texts']}</td>"
                           f"<td class='num'>{a['ned_before']:.3f}</td><td class='num'>{a['ned_after']:.3f}</td>"
                           f"<td class='num'>{a['drop']:.3f}</td><td class='num'>{a['p_value']:.3g}</td></tr>" for a in d.ned)
            out.append('<table class="ned"><thead><tr><th>inter-training</th><th>texts</th><th>NED before</th>'
                       f"<th>NED after</th><th>drop</th><th>p</th></tr></thead><tbody>{rows}</tbody></table>")
        for start, png in d.tsne:
            data = base64.b64encode(png).decode()
            out.append(f'<figure class="tsne"><img alt="t-SNE of {escape(d.name)} {escape(start)}" '
                       f'src="data:image/png;base64,{data}"><figcaption>t-SNE of test-text embeddings, '
                       f"{escape(start)}</figcaption></figure>")
        out.append("</section>")
    return "".join(out)


def render_costs(costs: tuple[KindCost, ...]) -> str:
    if not costs:
        return '<p class="muted">No step done yet.</p>'
    rows = "".join(f'<tr><td>{escape(c.kind)}</td><td>{escape(c.device)}</td><td class="num">{c.steps}</td>'
                   f'<td class="num">{c.seconds:,.0f}</td><td class="num">{c.seconds / 3600:.2f}</td></tr>' for c in costs)
    by_device: dict[str, float] = {}
    for c in costs:
        by_device[c.device] = by_device.get(c.device, 0.0) + c.seconds
    rows += "".join(f"<tr class='average'><td>all</td><td>{escape(dev)}</td><td class='num'>"
                    f"{sum(c.steps for c in costs if c.device == dev)}</td><td class='num'>{s:,.0f}</td>"
                    f"<td class='num'>{s / 3600:.2f}</td></tr>" for dev, s in by_device.items())
    return ('<table class="costs"><thead><tr><th>step kind</th><th>device</th><th>steps</th><th>seconds</th>'
            f"<th>hours</th></tr></thead><tbody>{rows}</tbody></table>")


def render_nmi(points: tuple[NmiPoint, ...]) -> str:
    """Figure 4's numbers, with the advice's agreement (AMI of the clusters with the labels
    on the cells' labeled samples) beside each dataset's NMI."""
    if not points:
        return ""
    rows = "".join(f'<tr><td>{escape(p.dataset)}</td><td class="num">{p.nmi:.3f}</td>'
                   f'<td class="num">{_num(p.ami, ".3f")}</td><td class="num">{p.gain:+.1f}</td></tr>' for p in points)
    return ('<table class="nmi"><caption>The advice inter-trains when the sample AMI is at least '
            f"{THRESHOLD}: {escape(RULE_FINDING)}.</caption><thead><tr><th>dataset</th><th>NMI (train set)</th>"
            "<th>sample AMI (advice)</th>"
            f"<th>gain (points)</th></tr></thead><tbody>{rows}</tbody></table>")


def _figure(svg: bytes | None, cls: str, caption: str) -> str:
    if not svg:
        return f'<p class="muted">{escape(caption)}: nothing to draw yet.</p>'
    inline = svg.decode().split("?>", 1)[-1]
    return f'<figure class="{cls}">{inline}<figcaption>{escape(caption)}</figcaption></figure>'


def _inline(md: str) -> str:
    """The markdown of the mixed-environment lines: **bold** and `code`, the rest escaped."""
    out = escape(md)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def render_mixed(lines: tuple[str, ...]) -> str:
    if not any(line.strip() for line in lines):
        return ""
    out, items = [], []
    for line in [*lines, ""]:
        if line.startswith("* "):
            items.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if items:
            out.append(f"<ul>{''.join(items)}</ul>")
            items = []
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    return f'<div class="mixed" role="alert">{"".join(out)}</div>'


def render(page: Page) -> str:
    total = page.state.total
    status = ("finished" if page.state.finished else
              f"{total['done']} of {sum(total.values())} steps done, {total['running']} running, "
              f"{total['failed']} failed")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(page.generated))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(page.name)}: Cluster &amp; Tune report</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(page.name)}</h1><p>Model <code>{escape(page.model)}</code>; store <code>{escape(page.store)}</code>; "
        f'<span class="run-status">{escape(status)}</span>; written {when}.</p>',
        render_mixed(page.mixed),
        f'<h2 id="state">State of the run</h2>{render_state(page.state, page.link_base)}',
        '<h2 id="table2">Table 2: accuracy (%), gain and error reduction over BERT</h2>',
        "<p class='muted'>Mean ± SEM over repetitions (and inter-training seeds); gain in points; error "
        "reduction = gain / (100 − baseline). Averages are over the group's datasets done in both settings. "
        "Cells with a count in brackets are not finished.</p>",
        *(f"<h3>against <code>{escape(b)}</code></h3>{render_table2(b, rows)}" for b, rows in page.table2.items()),
        "" if page.table2 else "<p class='muted'>The grid has no <code>bert</code> setting to take gains against; "
        "the accuracies are in summary.md below.</p>",
        '<h2 id="table3">Table 3: paired t-tests</h2>',
        *(f"<h3>against <code>{escape(b)}</code></h3>{render_tests(t)}" for b, t in page.tests.items()),
        '<h2 id="figure2">Figure 2: accuracy against the label budget</h2>',
        _figure(page.accuracy_svg, "figure2", "mean ± SEM per setting; budgets on a log scale"),
        '<h2 id="figure4">Figure 4: clusters\' NMI against the gain from inter-training</h2>',
        _figure(page.nmi_svg, "figure4", "one point per dataset"),
        render_nmi(page.nmi_points),
        f'<h2 id="datasets">Datasets: clusters, NED, t-SNE</h2>{render_details(page.details)}',
        f'<h2 id="cost">Cost</h2><p class="muted">Step seconds from each step\'s _SUCCESS record.</p>'
        f"{render_costs(page.costs)}",
        f'<h2 id="summary">summary.md</h2><details><summary>the text report (advice, leave-one-dataset-out, '
        f"variance shares)</summary><pre>{escape(page.summary_md)}</pre></details>",
        "</body></html>\n",
    ]
    return "".join(parts)
