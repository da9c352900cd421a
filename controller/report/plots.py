"""Accuracy against the label budget (log scale), per dataset and setting: the paper's Figure 2.

Drawn as SVG by hand: a vector picture any browser shows and a page can embed as it is, and
no plotting library in the controller or its image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from controller.analysis.spread import setting_spread

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")
PANEL_W, PANEL_H = 340, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 30, 44
LEGEND_ROW = 20
PANELS_PER_ROW = 3


@dataclass(frozen=True)
class Point:
    budget: int
    mean: float
    sem: float


def series(rows: list[dict], dataset: str, column: str) -> list[Point]:
    """Mean ± SEM accuracy (%) of one setting on one dataset, per budget that has cells."""
    points = []
    for b in sorted({r["budget"] for r in rows}):
        cells = [r for r in rows if r["dataset"] == dataset and r["column"] == column and r["budget"] == b]
        if cells:
            s = setting_spread(cells)
            points.append(Point(b, s.mean, 0.0 if math.isnan(s.sem) else s.sem))
    return points


def _y_range(all_points: list[Point]) -> tuple[float, float, float]:
    """Bottom, top and tick step of the accuracy axis: whole tens around the data, within 0..100."""
    if not all_points:
        return 0.0, 100.0, 20.0
    low = min(p.mean - p.sem for p in all_points)
    high = max(p.mean + p.sem for p in all_points)
    bottom = max(0.0, math.floor(low / 10) * 10)
    top = min(100.0, math.ceil(high / 10) * 10)
    if top - bottom < 10:
        bottom, top = max(0.0, top - 10), max(10.0, top)
    return bottom, top, 10.0 if top - bottom <= 50 else 20.0


class _Axes:
    """Maps (budget, accuracy) to pixels inside one panel; budgets on a log2 scale."""

    def __init__(self, x0: float, budgets: list[int], y_range: tuple[float, float, float], y0: float = 0.0):
        self.x0, self.y0, self.budgets = x0, y0, budgets
        lo, hi = math.log2(min(budgets)), math.log2(max(budgets))
        pad = 0.5 if hi > lo else 1.0
        self.lo, self.hi = lo - pad, hi + pad
        self.bottom, self.top, self.step = y_range

    def x(self, budget: float) -> float:
        width = PANEL_W - LEFT - RIGHT
        return self.x0 + LEFT + (math.log2(budget) - self.lo) / (self.hi - self.lo) * width

    def y(self, accuracy: float) -> float:
        height = PANEL_H - TOP - BOTTOM
        return self.y0 + TOP + (self.top - accuracy) / (self.top - self.bottom) * height


def svg_text(x: float, y: float, text: str, **attrs: str) -> str:
    extra = "".join(f" {k.rstrip('_').replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(text)}</text>'


def _frame(ax: _Axes, title: str) -> list[str]:
    x_left, x_right = ax.x0 + LEFT, ax.x0 + PANEL_W - RIGHT
    y_top, y_bottom = ax.y0 + TOP, ax.y0 + PANEL_H - BOTTOM
    out = [f'<g class="panel" data-dataset={quoteattr(title)}>',
           f'<rect x="{x_left:.1f}" y="{y_top}" width="{x_right - x_left:.1f}" height="{y_bottom - y_top}" '
           'fill="none" stroke="#444"/>',
           svg_text((x_left + x_right) / 2, y_top - 10, title, text_anchor="middle", font_weight="bold")]
    tick = ax.bottom
    while tick <= ax.top + 1e-9:
        y = ax.y(tick)
        out += [f'<line x1="{x_left:.1f}" y1="{y:.1f}" x2="{x_right:.1f}" y2="{y:.1f}" stroke="#ddd"/>',
                svg_text(x_left - 6, y + 4, f"{tick:g}", text_anchor="end")]
        tick += ax.step
    for b in ax.budgets:
        x = ax.x(b)
        out += [f'<line x1="{x:.1f}" y1="{y_bottom}" x2="{x:.1f}" y2="{y_bottom + 4}" stroke="#444"/>',
                svg_text(x, y_bottom + 16, str(b), text_anchor="middle")]
    out += [svg_text((x_left + x_right) / 2, ax.y0 + PANEL_H - 8, "labeled examples", text_anchor="middle"),
            svg_text(ax.x0 + 14, (y_top + y_bottom) / 2, "accuracy (%)", text_anchor="middle",
                  transform=f"rotate(-90 {ax.x0 + 14} {(y_top + y_bottom) / 2:.1f})")]
    return out


def _line(ax: _Axes, column: str, color: str, points: list[Point]) -> list[str]:
    xy = " ".join(f"{ax.x(p.budget):.1f},{ax.y(p.mean):.1f}" for p in points)
    out = [f'<g class="series" data-setting={quoteattr(column)}>',
           f'<polyline points="{xy}" fill="none" stroke="{color}" stroke-width="1.8"/>']
    for p in points:
        x, y_low, y_high = ax.x(p.budget), ax.y(p.mean - p.sem), ax.y(p.mean + p.sem)
        if p.sem:
            out += [f'<line x1="{x:.1f}" y1="{y_low:.1f}" x2="{x:.1f}" y2="{y_high:.1f}" stroke="{color}"/>',
                    *(f'<line x1="{x - 3:.1f}" y1="{y:.1f}" x2="{x + 3:.1f}" y2="{y:.1f}" stroke="{color}"/>'
                      for y in (y_low, y_high))]
        out.append(f'<circle cx="{x:.1f}" cy="{ax.y(p.mean):.1f}" r="3" fill="{color}">'
                   f'<title>{escape(column)} at {p.budget}: {p.mean:.1f} ± {p.sem:.1f}</title></circle>')
    return [*out, "</g>"]


def accuracy_plot(rows: list[dict], datasets: list[str], columns: list[str], budgets: list[int] | None = None) -> bytes:
    """An SVG with one panel per dataset; lines are settings, error bars the SEM. The x axis
    has ``budgets`` (default: those with cells)."""
    budgets = sorted(set(budgets or ()) | {r["budget"] for r in rows}) or [1]
    lines = {(d, c): series(rows, d, c) for d in datasets for c in columns}
    y_range = _y_range([p for points in lines.values() for p in points])
    per_line = min(PANELS_PER_ROW, max(len(datasets), 1))
    panel_rows = math.ceil(max(len(datasets), 1) / per_line)
    width = PANEL_W * per_line
    legend_y = PANEL_H * panel_rows
    height = legend_y + LEGEND_ROW * math.ceil(len(columns) / max(1, width // 150)) + 6
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, dataset in enumerate(datasets):
        ax = _Axes((i % per_line) * PANEL_W, budgets, y_range, (i // per_line) * PANEL_H)
        out += _frame(ax, dataset)
        for j, column in enumerate(columns):
            if lines[(dataset, column)]:
                out += _line(ax, column, COLORS[j % len(COLORS)], lines[(dataset, column)])
        out.append("</g>")
    per_row = max(1, width // 150)
    for j, column in enumerate(columns):
        x, y = LEFT + (j % per_row) * 150, legend_y + LEGEND_ROW * (j // per_row) + 12
        color = COLORS[j % len(COLORS)]
        out += [f'<line x1="{x}" y1="{y}" x2="{x + 18}" y2="{y}" stroke="{color}" stroke-width="2"/>',
                svg_text(x + 24, y + 4, column, class_="legend")]
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode()
