"""Resolve the spec's datasets, check them against the spec, and stage them into the store.

A staged dataset is content-addressed (``datasets/<name>-<digest>``): the same texts give
the same prefix, so steps keyed by it are reused; new texts give new step ids.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.spec import DatasetSpec, ExperimentSpec, SpecError
from jobs.data import DataError, Examples, default_data_dir, dump_jsonl, find_split, label_names, read_examples
from jobs.step import MARKER, is_done
from jobs.storage import Store


@dataclass(frozen=True)
class PreparedDataset:
    name: str
    prefix: str
    train: Examples
    test: Examples
    labels: tuple[str, ...]
    files: dict[str, bytes]


def resolve_data_dir(spec: ExperimentSpec, override: str | None) -> Path | None:
    chosen = override or spec.data_dir
    return Path(chosen).expanduser() if chosen else default_data_dir()


def _split_path(d: DatasetSpec, split: str, data_dir: Path | None) -> Path:
    given = getattr(d, split)
    if given:
        return Path(given).expanduser()
    if data_dir is None:
        raise DataError(f"dataset {d.name!r}: no data directory (set data_dir, --data-dir or CTUNE_DATA_DIR)")
    folder = data_dir / d.name
    if not folder.is_dir():
        known = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
        hint = f" (known: {', '.join(known)})" if known else f" ({data_dir} has no datasets)"
        raise DataError(f"unknown dataset {d.name!r}: no folder {folder}{hint}")
    path = find_split(folder, split)
    if path is None:
        raise DataError(f"dataset {d.name!r}: no {split}.jsonl or {split}.csv in {folder}")
    return path


def _subset(examples: Examples, limit: int | None, seed: int) -> Examples:
    if limit is None or limit >= len(examples):
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return Examples(tuple(examples.texts[i] for i in keep), tuple(examples.labels[i] for i in keep))


def prepare(d: DatasetSpec, data_dir: Path | None) -> PreparedDataset:
    """Read, check and normalize one dataset (in memory; nothing is written)."""
    train = read_examples(_split_path(d, "train", data_dir), d.text_field, d.label_field)
    test = read_examples(_split_path(d, "test", data_dir), d.text_field, d.label_field)
    train = _subset(train, d.max_train, seed=1)
    test = _subset(test, d.max_test, seed=2)
    labels = tuple(label_names(train.labels))
    unseen = sorted({y for y in test.labels if y not in set(labels)})
    if unseen:
        raise DataError(f"dataset {d.name!r}: test labels absent from train: {', '.join(unseen[:5])}")
    files = {
        "train.jsonl": dump_jsonl(train),
        "test.jsonl": dump_jsonl(test),
        "labels.json": (json.dumps({"labels": list(labels)}, indent=2) + "\n").encode(),
    }
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    prefix = f"datasets/{d.name}-{digest.hexdigest()[:16]}"
    return PreparedDataset(d.name, prefix, train, test, labels, files)


def prepare_all(spec: ExperimentSpec, data_dir: Path | None, source: str) -> dict[str, PreparedDataset]:
    """Prepare every dataset and check the spec against the data; raises SpecError or DataError."""
    prepared = {d.name: prepare(d, data_dir) for d in spec.datasets}
    problems = []
    for name, p in prepared.items():
        n = len(p.train)
        for b in spec.budgets:
            if b > n:
                problems.append(f"budgets: {b} is larger than the train set of {name} ({n} texts)")
        if "clust" in spec.settings and n < spec.clustering.n_clusters:
            problems.append(f"clustering.n_clusters: {name} has {n} train texts, "
                            f"fewer than n_clusters={spec.clustering.n_clusters}")
        if len(p.labels) < 2:
            problems.append(f"datasets: {name} has fewer than two labels in its train set")
    if problems:
        raise SpecError(source, problems)
    return prepared


def stage(store: Store, p: PreparedDataset) -> bool:
    """Write the dataset into the store unless it is there; True when it was written."""
    if is_done(store, p.prefix):
        return False
    for name, data in p.files.items():
        store.write_bytes(f"{p.prefix}/{name}", data)
    stats = {"name": p.name, "train": len(p.train), "test": len(p.test), "labels": list(p.labels)}
    store.write_bytes(f"{p.prefix}/{MARKER}", (json.dumps(stats, indent=2) + "\n").encode())
    return True
