"""A retraining round's report as lines (pure: a record in, lines out): what ``ctune train``
prints, and what the card, ``ctune models show`` and the history page show."""

from __future__ import annotations


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def corpus_line(record: dict) -> str | None:
    """How much of the corpus the round read and trained on."""
    read = record.get("corpus_read")
    if read is None:
        return None
    kept, limit, also = record.get("corpus_kept", read), record.get("corpus_limit", 0), record.get("corpus_also_labeled", 0)
    both = f"; {also} of them labeled texts too, in the round as such" if also else ""
    if not limit or kept + also >= read:
        return f"corpus: all {read} texts read (besides the labeled ones) clustered and inter-trained on{both}"
    how = "the newest" if record.get("corpus_pick") == "newest" else "a uniform sample of"
    return (f"corpus: {how} {kept} of {read} texts read (--corpus-limit {limit}) clustered and inter-trained "
            f"on{both}")


def labels_line(record: dict) -> str | None:
    added, dropped = record.get("labels_added") or [], record.get("labels_dropped") or []
    if not added and not dropped:
        return None
    parts = ([f"added {', '.join(added)}"] if added else []) + ([f"dropped {', '.join(dropped)}"] if dropped else [])
    return (f"labels against the version then current: {'; '.join(parts)} (the gate compared the dev texts of "
            "the labels both know)")


def drift_lines(drift: dict | None) -> list[str]:
    """What changed since the version in use: new texts, emerging topics, label shift, dev coverage."""
    if not drift:
        return []
    if drift.get("error"):
        return [f"what changed: {drift['error']}"]
    if not drift.get("compared"):
        why = ("no version in use" if not drift.get("against")
               else f"version {drift['against']} keeps no corpus index")
        return [f"what changed: not compared ({why}); {drift['texts']} corpus texts"]
    out = [f"what changed since {drift['against']}: {drift['new']} of {drift['texts']} clustered texts are new "
           f"({_pct(drift['new_share'])})"]
    emerging = drift.get("emerging") or []
    if emerging:
        out.append(f"emerging topics: {len(emerging)} cluster(s) hold more new texts than the {_pct(drift['new_share'])} "
                   f"overall (binomial test, p < {drift['alpha']:g} over {drift['clusters']} clusters)")
        for e in emerging:
            out.append(f"  cluster {e['cluster']}: {e['new']} of {e['texts']} new ({_pct(e['new_share'])}, "
                       f"p = {e['p']:.2g}); stems: {', '.join(e.get('top_stems', [])[:8])}")
            out += [f"    e.g. {text[:120]!r}" for text in e.get("examples", [])[:2]]
    else:
        out.append(f"emerging topics: none (no cluster holds more new texts than the {_pct(drift['new_share'])} "
                   f"overall at p < {drift['alpha']:g})")
    shift = drift.get("labels")
    if shift and shift.get("p") is not None:
        moved = ", ".join(f"{m['label']} {_pct(m['old'])} -> {_pct(m['new'])}" for m in shift.get("moved", []))
        word = "shifted" if shift["shifted"] else "no shift shown"
        out.append(f"labels the version in use gives new texts vs old ones ({shift['new_texts']} vs "
                   f"{shift['old_texts']}): {word} (chi-square p = {shift['p']:.2g}); moved most: {moved or 'none'}")
    cover = drift.get("dev_coverage")
    if cover:
        out.append(f"dev coverage: {_pct(cover['new_share_in_thin'])} of the new texts lie in the "
                   f"{len(cover['thin_clusters'])} cluster(s) where the dev set holds fewer than {cover['min_dev']} "
                   "texts: the gate cannot see these")
    return out


def batch_line(drift: dict | None, version: str, registry: str) -> str | None:
    batch = (drift or {}).get("batch")
    if not batch:
        return None
    return (f"to label next: {batch['texts']} texts ({batch['disagree']} where the new and the current versions "
            f"disagree, {batch['emerging']} from emerging topics, over {batch['clusters']} clusters): "
            f"`ctune suggest --registry {registry}@{version}`")


def round_lines(record: dict) -> list[str]:
    """Everything a round says, in the order ``ctune train`` prints it."""
    lines = [line for line in (corpus_line(record), labels_line(record)) if line]
    lines += drift_lines(record.get("drift"))
    batch = batch_line(record.get("drift"), record["version"], record.get("registry", "REGISTRY"))
    return lines + ([batch] if batch else [])
