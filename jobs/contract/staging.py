"""Staged datasets: what the controller writes into the store before any step reads it.

``datasets/<name>-<digest>/`` holds one normalized JSONL file per split (``train``,
``test``, ``labeled``), ``labels.json`` (the label map) where there are labels, and
``_SUCCESS`` (counts) written last. The digest hashes the files, so the same texts give the
same prefix (and the steps keyed by it are reused) and new texts a new one.

The corpus that clustering and inter-training read is the train (or labeled) texts first,
with their labels, then the extra unlabeled texts: the first ``n`` cluster ids of a
clustering are those of the ``n`` labeled texts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.contract import integrity
from jobs.contract.steps import MARKER, is_done
from jobs.data import Examples, dump_jsonl, load_jsonl_bytes
from jobs.storage import Store

DATASETS = "datasets"
TRAIN, TEST, LABELED = "train", "test", "labeled"
LABELS = "labels.json"


def split_key(prefix: str, split: str) -> str:
    return f"{prefix}/{split}.jsonl"


def digest(files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class StagedDataset:
    """A dataset's files as they will be staged; ``prefix`` is where."""

    name: str
    files: Mapping[str, bytes]
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{DATASETS}/{self.name}-{digest(self.files)}"


def staged_dataset(name: str, splits: Mapping[str, Examples], labels: Sequence[str] | None = None,
                   stats: Mapping[str, Any] | None = None) -> StagedDataset:
    """``stats``: what ``_SUCCESS`` records (counts), not hashed."""
    files = {f"{split}.jsonl": dump_jsonl(examples) for split, examples in splits.items()}
    if labels is not None:
        files[LABELS] = (json.dumps({"labels": list(labels)}, indent=2) + "\n").encode()
    return StagedDataset(name, files, dict(stats or {}))


def corpus(labeled: Examples, extra: Examples | None) -> Examples:
    """What clustering and inter-training read: ``labeled`` first (labels kept), then ``extra``."""
    if extra is None:
        return labeled
    return Examples(labeled.texts + extra.texts, labeled.labels + (None,) * len(extra))


def labeled_cluster_ids(cluster_ids: Sequence[int], n_labeled: int) -> list[int]:
    """The cluster ids of the labeled texts of a corpus built by :func:`corpus`."""
    return list(cluster_ids[:n_labeled])


def stage(store: Store, dataset: StagedDataset) -> bool:
    """Write the files, then ``_SUCCESS``, unless staged already; True when written."""
    if is_done(store, dataset.prefix):
        return False
    for name, data in dataset.files.items():
        store.write_bytes(f"{dataset.prefix}/{name}", data)
    record = {**dataset.stats, integrity.FILES: {name: integrity.entry(data) for name, data in sorted(dataset.files.items())}}
    store.write_bytes(f"{dataset.prefix}/{MARKER}", (json.dumps(record, indent=2) + "\n").encode())
    return True


def has_split(store: Store, prefix: str, split: str) -> bool:
    return store.exists(split_key(prefix, split))


def read_split(store: Store, prefix: str, split: str) -> Examples:
    """A staged split, checked against what staging recorded (a cut or edited file is caught)."""
    key = split_key(prefix, split)
    data = integrity.check_bytes(key, store.read_bytes(key), integrity.recorded(store, prefix).get(f"{split}.jsonl"))
    return load_jsonl_bytes(data, key)


def read_label_names(store: Store, prefix: str) -> list[str]:
    labels: list[str] = json.loads(store.read_bytes(f"{prefix}/{LABELS}"))["labels"]
    return labels
