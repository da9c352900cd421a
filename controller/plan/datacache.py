"""What reading a dataset found, remembered by the identity of its files.

Reading and hashing every dataset dominates ``ctune plan`` (a second or more for the
paper's grid); its result (prefixes, counts, labels) only changes when a source file does.
A file's identity is its resolved path, size, inode and modification and change times, so an
edit, a replacement or a ``touch`` invalidates the entry. Sources in S3 are read each time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.storage import cache_dir

VERSION = 2
"""Bump when what an entry means changes (the staged layout, the summary's fields)."""


@dataclass(frozen=True)
class DatasetSummary:
    """What the plan and the checks need of a dataset, without its texts."""

    prefix: str
    corpus_prefix: str
    n_train: int
    n_test: int
    n_corpus: int
    labels: tuple[str, ...]
    n_nonempty: int
    """Train texts that are not empty."""
    n_worded: int
    """Texts to cluster that keep a word after stop-word removal (sIB needs words)."""


def fingerprint(spec: Any, sources: list[str]) -> str | None:
    """A key for a dataset spec read from these sources; None when one is not a local file."""
    parts: list[Any] = [VERSION, dataclasses.asdict(spec)]
    for src in sources:
        if src.startswith("s3://"):
            return None
        path = Path(src).expanduser().resolve()
        st = path.stat()
        parts.append([str(path), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _path(key: str) -> Path:
    return cache_dir() / "datasets" / f"{key}.json"


def load(key: str | None) -> DatasetSummary | None:
    if key is None:
        return None
    try:
        raw = json.loads(_path(key).read_text())
        return DatasetSummary(**{**raw, "labels": tuple(raw["labels"])})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save(key: str | None, summary: DatasetSummary) -> None:
    if key is None:
        return
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(dataclasses.asdict(summary)))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time
