"""Staged datasets in the store: ``datasets/<name>-<digest>/{train,test}.jsonl`` + ``labels.json``.

The controller stages a dataset once (normalized JSONL, content-addressed); steps read it
from the store only, so a step never needs the data directory.
"""

from __future__ import annotations

import json

from jobs.data import Examples, load_jsonl_bytes
from jobs.storage import Store


def read_split(store: Store, dataset_prefix: str, split: str) -> Examples:
    key = f"{dataset_prefix}/{split}.jsonl"
    return load_jsonl_bytes(store.read_bytes(key), key)


def read_cluster_ids(store: Store, cluster_prefix: str) -> list[int]:
    """The cluster id of every train text, as a ``cluster`` step wrote them."""
    return json.loads(store.read_bytes(f"{cluster_prefix}/assignments.json"))["labels"]


def read_label_names(store: Store, dataset_prefix: str) -> list[str]:
    return json.loads(store.read_bytes(f"{dataset_prefix}/labels.json"))["labels"]
