"""What ``ctune models ls`` and ``ctune models show`` print (pure: records in, lines out)."""

from __future__ import annotations

from datetime import datetime, timezone

from controller.models.registry import Pointer


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
    gate = record.get("gate") or {}
    return "refused" if gate.get("promote") is False else "not promoted"


def ls_lines(records: list[dict], pointer: Pointer) -> list[str]:
    header = f"  {'version':<16}  {'created (UTC)':<16}  {'setting':<18} {'labeled':>7} {'corpus':>7} " \
             f"{'dev':>5} {'acc':>5} {'F1':>5}  status"
    out = [header]
    for r in records:
        new = (r.get("gate") or {}).get("new") or {}
        mark = "*" if pointer.current == r["version"] else " "
        out.append(f"{mark} {r['version']:<16}  {utc_minute(r.get('created', 0)):<16}  {r.get('setting', ''):<18} "
                   f"{r.get('labeled', 0):>7} {r.get('corpus', 0):>7} {new.get('n', 0):>5} "
                   f"{new.get('accuracy', 0.0):>5.1f} {new.get('macro_f1', 0.0):>5.1f}  {status(r, pointer)}")
    return out


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
    lines.append(f"  gate (tolerance {gate.get('tolerance')}): {'promote' if gate.get('promote') else 'refuse'}: "
                 f"{gate.get('why')}")
    lines += [f"  step {kind}: {sid}" for kind, sid in record.get("steps", {}).items()]
    moves = [m for m in pointer.log if m["version"] == record["version"]]
    lines += [f"  {utc_minute(m['at'])} UTC {m['action']}: {m['why']}" for m in moves]
    return lines
