"""What ``ctune models ls`` and ``ctune models show`` print (pure: records in, lines out)."""

from __future__ import annotations

from datetime import datetime, timezone

from controller.models.registry import Pointer
from controller.models.round_text import round_lines


def utc_minute(ts: float) -> str:
    """A record's time as the listing, the history page and the card show it (UTC, to the minute)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def status(record: dict, pointer: Pointer) -> str:
    version = record["version"]
    if pointer.current == version:
        return "current"
    if version in pointer.stack:
        return "earlier"
    if pointer.was_current(version):
        return "rolled back"
    word = outcome(record)
    return {"refuse": "refused", "inconclusive": "inconclusive"}.get(word, "not promoted")


def outcome(record: dict) -> str:
    """The gate's word on the version's latest decision: ``promote``, ``refuse`` or
    ``inconclusive`` (a record from before the three outcomes: from its ``promote``)."""
    gate = record.get("gate") or {}
    if "outcome" in gate:
        return str(gate["outcome"])
    return "promote" if gate.get("promote") else "refuse"


def gate_word(record: dict, pointer: Pointer) -> str:
    """What the decision came to: the gate's word, and for a promotion whether the pointer moved."""
    word = outcome(record)
    if word != "promote":
        return {"refuse": "refused", "inconclusive": "inconclusive"}.get(word, word)
    gate = record.get("gate") or {}
    moved = gate.get("moved") or pointer.was_current(record["version"]) or "outcome" not in gate
    return "promoted" if moved else "passed the gate; the pointer has not moved yet"


def evidence_lines(gate: dict) -> list[str]:
    """Each comparison's paired evidence, one line each (and one per label)."""
    out = []
    for c in gate.get("comparisons", []):
        e = c["evidence"]
        acc, f1 = e["accuracy"], e["macro_f1"]
        pct = round(100 * e["confidence"])
        out.append(f"against {c['role']} {c['against']} ({c['outcome']}): accuracy {acc['change']:+.1f} "
                   f"[{acc['low']:+.1f}, {acc['high']:+.1f}], macro-F1 {f1['change']:+.1f} [{f1['low']:+.1f}, "
                   f"{f1['high']:+.1f}] ({pct}%), McNemar p = {e['mcnemar_p']:.3g}, {e['new_only']} fixed, "
                   f"{e['current_only']} broken (negative flips {e['negative_flip_rate']:.1f}%)")
        out.append("  F1 by label: " + ", ".join(f"{label} {i['change']:+.1f} [{i['low']:+.1f}, {i['high']:+.1f}]"
                                                 for label, i in e["labels"].items()))
    return out


def ls_lines(records: list[dict], pointer: Pointer) -> list[str]:
    header = f"  {'version':<16}  {'created (UTC)':<16}  {'setting':<18} {'labeled':>7} {'corpus':>7} " \
             f"{'dev':>5} {'acc':>5} {'F1':>5}  status"
    out = [header]
    for r in records:
        new = (r.get("gate") or {}).get("new") or {}
        mark = "*" if pointer.current == r["version"] else " "
        out.append(f"{mark} {r['version']:<16}  {utc_minute(r.get('created', 0)):<16}  {r.get('setting', ''):<18} "
                   f"{r.get('labeled', 0):>7} {r.get('corpus', 0):>7} {new.get('n', 0):>5} "
                   f"{new.get('accuracy', 0.0):>5.1f} {new.get('macro_f1', 0.0):>5.1f}  {status(r, pointer)}"
                   + (f"  ({change})" if (change := accuracy_change(r)) else ""))
    return out


def accuracy_change(record: dict) -> str:
    """The accuracy's change against the version then current, with its interval: ``acc +0.3
    [-1.2, +1.8] vs v``; empty for a first version or a record without evidence."""
    for c in (record.get("gate") or {}).get("comparisons", []):
        if c["role"] == "current":
            i = c["evidence"]["accuracy"]
            return f"acc {i['change']:+.1f} [{i['low']:+.1f}, {i['high']:+.1f}] vs {c['against'][:8]}"
    return ""


def _earlier_decisions(record: dict, gate: dict) -> list[str]:
    earlier = [d for d in record.get("decisions", []) if d.get("key") != gate.get("key")]
    return [f"  earlier decision (dev {str(d.get('dev_digest'))[:12]}, {d.get('settings')}): {d.get('outcome')}: "
            f"{d.get('why')}" for d in earlier]


def show_lines(record: dict, pointer: Pointer) -> list[str]:
    gate = record.get("gate") or {}
    new, cur = gate.get("new") or {}, gate.get("current") or {}
    lines = [f"version {record['version']} ({status(record, pointer)}), created {utc_minute(record.get('created', 0))} UTC "
             f"by cluster-tune {record.get('code_version')}",
             f"  setting {record.get('setting')} (asked: {record.get('asked')}), base model {record.get('base_model')}",
             f"  labels: {', '.join(record.get('labels', []))}",
             f"  texts: {record.get('labeled')} labeled (sha256 {record.get('labeled_digest', '')[:12]}), "
             f"{record.get('corpus')} corpus (sha256 {record.get('corpus_digest', '')[:12]})",
             f"  dev: {new.get('n')} texts from {record.get('dev_source')}: accuracy {new.get('accuracy', 0):.1f}, "
             f"macro-F1 {new.get('macro_f1', 0):.1f}"]
    if cur:
        lines.append(f"  current then ({gate.get('current_version')}): accuracy {cur.get('accuracy', 0):.1f}, "
                     f"macro-F1 {cur.get('macro_f1', 0):.1f}")
    settings = gate.get("settings") or {"tolerance": gate.get("tolerance")}
    lines.append(f"  gate ({', '.join(f'{k} {v}' for k, v in settings.items())}): {gate_word(record, pointer)}: "
                 f"{gate.get('why')}")
    lines += [f"    {line}" for line in evidence_lines(gate)]
    lines += _earlier_decisions(record, gate)
    lines += [f"  {line}" for line in round_lines(record)]
    lines += [f"  step {kind}: {sid}" for kind, sid in record.get("steps", {}).items()]
    moves = [m for m in pointer.log if m["version"] == record["version"]]
    lines += [f"  {utc_minute(m['at'])} UTC {m['action']}: {m['why']}" for m in moves]
    return lines
