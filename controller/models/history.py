"""The registry's history page (``history.html`` beside ``current.json``): every version over
time with its corpus and label counts, dev accuracy and macro-F1 (a plot), and whether it was
promoted and why. Rewritten after every publish and every move of the pointer; one file with
its SVG inline, so it opens from S3 or a folder alike."""

from __future__ import annotations

from html import escape

from controller.models.listing import evidence_lines, status, utc_minute
from controller.models.registry import Pointer, Registry
from controller.models.round_text import round_lines

PAGE = "history.html"
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 260, 48, 16, 20, 40


def accuracy_svg(records: list[dict], pointer: Pointer) -> str:
    """Dev accuracy (and macro-F1, dashed) by version, oldest first; promoted versions filled."""
    if not records:
        return ""
    xs = [LEFT + (W - LEFT - RIGHT) * (i + 0.5) / len(records) for i in range(len(records))]

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - v / 100)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" '
           'aria-label="dev accuracy by version">']
    out += [f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11">{tick}</text>'
            for tick in range(0, 101, 25)]
    for key, dash, color in (("accuracy", "", "#1f77b4"), ("macro_f1", ' stroke-dasharray="4 3"', "#ff7f0e")):
        values = [((r.get("gate") or {}).get("new") or {}).get(key, 0.0) for r in records]
        points = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in zip(xs, values))
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}"{dash}/>')
        for x, v, r in zip(xs, values, records):
            filled = color if pointer.was_current(r["version"]) else "white"
            out.append(f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="4" fill="{filled}" stroke="{color}">'
                       f'<title>{escape(r["version"])} {key} {v:.1f}</title></circle>')
    for x, r in zip(xs, records):
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="10">'
                   f'{escape(r["version"][:8])}</text>')
    out.append(f'<text x="{LEFT}" y="{H - 6}" font-size="11">dev accuracy (solid) and macro-F1 (dashed), %; '
               'filled: promoted</text></svg>')
    return "".join(out)


def history_page(uri: str, records: list[dict], pointer: Pointer) -> str:
    rows = []
    for r in reversed(records):
        gate = r.get("gate") or {}
        new = gate.get("new") or {}
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in (
            r["version"], utc_minute(r.get("created", 0)), r.get("setting", ""), r.get("labeled", ""), r.get("corpus", ""),
            f"{new.get('accuracy', 0):.1f}", f"{new.get('macro_f1', 0):.1f}", status(r, pointer),
            gate.get("why", ""))) + "<td>" + "<br>".join(escape(line) for line in evidence_lines(gate)) + "</td>"
            + "<td>" + "<br>".join(escape(line) for line in round_lines(r)) + "</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("version", "created (UTC)", "setting", "labeled", "corpus",
                                              "dev accuracy", "dev macro-F1", "status", "gate", "evidence (changes, intervals)",
                                              "what changed, what to label next"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(uri)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;"
            "text-align:left}</style></head><body>"
            f"<h1>{escape(uri)}</h1><p>current: <b>{escape(pointer.current or 'none')}</b>; "
            f"{len(records)} version(s); {len(pointer.log)} move(s) of the pointer</p>"
            f"{accuracy_svg(records, pointer)}<table><tr>{head}</tr>{''.join(rows)}</table></body></html>\n")


def write_history(registry: Registry) -> str:
    """Rewrite the registry's ``history.html``; its key."""
    registry.store.write_bytes(PAGE, history_page(registry.uri, registry.versions(), registry.pointer()).encode())
    return PAGE
