"""The paper's Figure 4: per dataset, the clusters' NMI with the gold labels against the
accuracy the cluster inter-training adds at the smallest budget. Hand-drawn SVG, like
``controller.report.plots``."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

from controller.report.paper_tables import NmiPoint
from controller.report.plots import COLORS, svg_text

W, H = 420, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 30, 44


def _span(values: list[float], step: float, floor: float | None = None) -> tuple[float, float]:
    low = math.floor(min(values) / step) * step
    high = math.ceil(max(values) / step) * step
    if floor is not None:
        low = max(floor, low)
    return (low, high + step) if high <= low else (low, high)


def nmi_gain_plot(points: list[NmiPoint], column: str, baseline: str, budget: int) -> bytes:
    """One point per dataset; the dashed line is no gain. A title on each point gives the
    dataset, NMI, gain and the advice's AMI."""
    xs = [p.nmi for p in points] or [0.0, 1.0]
    ys = [p.gain for p in points] + [0.0]
    x0, x1 = _span(xs, 0.1, 0.0)
    y0, y1 = _span(ys, 5.0)

    def x(v: float) -> float:
        return LEFT + (v - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (y1 - v) / (y1 - y0) * (H - TOP - BOTTOM)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="11">', f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" stroke="#444"/>',
           svg_text(W / 2, TOP - 10, f"gain of {column} over {baseline} at {budget} labels", text_anchor="middle",
                    font_weight="bold")]
    tick = y0
    while tick <= y1 + 1e-9:
        out += [f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{W - RIGHT}" y2="{y(tick):.1f}" stroke="#eee"/>',
                svg_text(LEFT - 6, y(tick) + 4, f"{tick:+g}", text_anchor="end")]
        tick += 5.0 if y1 - y0 <= 40 else 10.0
    tick = x0
    while tick <= x1 + 1e-9:
        out.append(svg_text(x(tick), H - BOTTOM + 16, f"{tick:.1f}", text_anchor="middle"))
        tick += 0.1
    out += [f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{W - RIGHT}" y2="{y(0):.1f}" stroke="#888" stroke-dasharray="4 3"/>',
            svg_text(W / 2, H - 8, "NMI of the clusters with the gold labels", text_anchor="middle"),
            svg_text(14, (TOP + H - BOTTOM) / 2, "gain (accuracy points)", text_anchor="middle",
                     transform=f"rotate(-90 14 {(TOP + H - BOTTOM) / 2:.1f})")]
    for i, p in enumerate(points):
        ami = "" if p.ami is None else f", sample AMI {p.ami:.3f}"
        out += [f'<g class="point" data-dataset={quoteattr(p.dataset)}>',
                f'<circle cx="{x(p.nmi):.1f}" cy="{y(p.gain):.1f}" r="5" fill="{COLORS[i % len(COLORS)]}">'
                f'<title>{escape(p.dataset)}: NMI {p.nmi:.3f}, gain {p.gain:+.1f}{escape(ami)}</title></circle>',
                svg_text(x(p.nmi) + 7, y(p.gain) - 6, p.dataset), "</g>"]
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode()
