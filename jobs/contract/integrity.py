"""Integrity of committed artifacts: ``_SUCCESS`` records the size and SHA-256 of every file
a step (or a staged dataset) wrote; readers check them.

Cheap checks (sizes from one listing, hashes of files up to :data:`SMALL`) run before a run
reads a step's outputs; ``ctune verify --deep`` hashes everything. A step whose files do not
match its record is uncommitted (its ``_SUCCESS`` renamed to ``_CORRUPT``, kept for a look)
and computed again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from jobs.contract.errors import CtuneError
from jobs.contract.layout import MARKER
from jobs.storage import Store

SMALL = 1 << 20
"""Files up to this size are hashed by the cheap check too (metrics, samples, assignments)."""
FILES = "files"
"""The ``_SUCCESS`` key: output name -> ``{"size": bytes, "sha256": hex}``."""
CORRUPT = "_CORRUPT"


class CorruptArtifact(CtuneError):
    """A committed file does not match its record: ``ctune verify`` then ``ctune run`` redo it."""

    retryable = True


def entry(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_entry(path: Path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def recorded(store: Store, prefix: str) -> dict[str, dict]:
    """The files a commit recorded (empty for commits older than the records)."""
    try:
        record = json.loads(store.read_bytes(f"{prefix}/{MARKER}"))
    except ValueError:
        raise CorruptArtifact(f"{prefix}/{MARKER}: unreadable commit record") from None
    files = record.get(FILES) if isinstance(record, dict) else None
    return files if isinstance(files, dict) else {}


def check_bytes(key: str, data: bytes, expected: dict | None) -> bytes:
    """``data`` read from ``key``, raising CorruptArtifact when it differs from its record."""
    if expected is not None and entry(data) != {"size": expected.get("size"), "sha256": expected.get("sha256")}:
        raise CorruptArtifact(f"{key}: {len(data):,} bytes that do not match the commit record "
                              f"({expected.get('size'):,} bytes, sha256 {str(expected.get('sha256'))[:12]}...)")
    return data


def verify(store: Store, prefix: str, deep: bool = False) -> list[str]:
    """What is wrong with a committed step's files (empty: nothing, no record to check, or
    not committed)."""
    if not store.exists(f"{prefix}/{MARKER}"):
        return []
    try:
        files = recorded(store, prefix)
    except CorruptArtifact as exc:
        return [str(exc)]
    if not files:
        return []
    sizes = store.sizes(prefix)
    problems = []
    for name, expected in sorted(files.items()):
        key = f"{prefix}/{name}"
        if key not in sizes:
            problems.append(f"{key}: missing")
        elif sizes[key] != expected.get("size"):
            problems.append(f"{key}: {sizes[key]:,} bytes, the record says {expected.get('size'):,}")
        elif deep or sizes[key] <= SMALL:
            try:
                check_bytes(key, store.read_bytes(key), expected)
            except CorruptArtifact as exc:
                problems.append(str(exc))
    return problems


def uncommit(store: Store, prefix: str, problems: list[str]) -> None:
    """Mark a step not done: its record moves to ``_CORRUPT`` with the problems found."""
    record = store.read_bytes(f"{prefix}/{MARKER}")
    store.write_bytes(f"{prefix}/{CORRUPT}", json.dumps({"problems": problems, "record": record.decode(
        errors="replace")}, indent=2).encode())
    store.delete(f"{prefix}/{MARKER}")
