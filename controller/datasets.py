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
    corpus_prefix: str = ""
    """What clustering and inter-training read: the train texts, then the extra unlabeled
    ``corpus`` texts; the dataset itself when there is no corpus."""
    corpus_files: dict[str, bytes] | None = None
    n_corpus: int = 0


def read_source(src: str, text_field: str, label_field: str | None) -> Examples:
    """A local .jsonl/.csv file, an ``s3://`` object, or every .jsonl/.csv under an ``s3://``
    prefix (in key order: new files appended under the prefix add texts at the end)."""
    if not src.startswith("s3://"):
        return read_examples(Path(src).expanduser(), text_field, label_field)
    from jobs.data import parse_csv, parse_jsonl
    from jobs.storage import open_store, split_s3_uri

    root, key = split_s3_uri(src)
    store = open_store(root)
    keys = [key] if key and store.exists(key) else [
        k for k in sorted(store.list(key)) if k.endswith((".jsonl", ".csv"))]
    if not keys:
        raise DataError(f"{src}: no .jsonl or .csv objects there")
    texts: list[str] = []
    labels: list[str | None] = []
    for k in keys:
        raw = store.read_bytes(k).decode("utf-8", errors="strict")
        parse = parse_csv if k.endswith(".csv") else parse_jsonl
        part = parse(raw, f"{root}/{k}", text_field, label_field)
        texts += part.texts
        labels += part.labels
    return Examples(tuple(texts), tuple(labels))


def _digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()[:16]


def resolve_data_dir(spec: ExperimentSpec, override: str | None) -> Path | None:
    chosen = override or spec.data_dir
    return Path(chosen).expanduser() if chosen else default_data_dir()


def _split_path(d: DatasetSpec, split: str, data_dir: Path | None) -> str:
    given = getattr(d, split)
    if given:
        return given
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
    return str(path)


def _subset(examples: Examples, limit: int | None, seed: int) -> Examples:
    if limit is None or limit >= len(examples):
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return Examples(tuple(examples.texts[i] for i in keep), tuple(examples.labels[i] for i in keep))


def prepare(d: DatasetSpec, data_dir: Path | None) -> PreparedDataset:
    """Read, check and normalize one dataset (in memory; nothing is written)."""
    train = read_source(_split_path(d, "train", data_dir), d.text_field, d.label_field)
    test = read_source(_split_path(d, "test", data_dir), d.text_field, d.label_field)
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
    prefix = f"datasets/{d.name}-{_digest(files)}"
    if d.corpus is None:
        return PreparedDataset(d.name, prefix, train, test, labels, files, prefix, None, len(train))
    extra = read_source(d.corpus, d.text_field, None)
    corpus = Examples(train.texts + extra.texts, train.labels + (None,) * len(extra))
    corpus_files = {"train.jsonl": dump_jsonl(corpus)}
    corpus_prefix = f"datasets/{d.name}-corpus-{_digest(corpus_files)}"
    return PreparedDataset(d.name, prefix, train, test, labels, files, corpus_prefix, corpus_files, len(corpus))


def prepare_all(spec: ExperimentSpec, data_dir: Path | None, source: str) -> dict[str, PreparedDataset]:
    """Prepare every dataset and check the spec against the data; raises SpecError or DataError."""
    prepared = {d.name: prepare(d, data_dir) for d in spec.datasets}
    problems = []
    for name, p in prepared.items():
        n = len(p.train)
        for b in spec.budgets:
            if b > n:
                problems.append(f"budgets: {b} is larger than the train set of {name} ({n} texts)")
        if "clust" in spec.settings and p.n_corpus < spec.clustering.n_clusters:
            problems.append(f"clustering.n_clusters: {name} has {p.n_corpus} texts to cluster, "
                            f"fewer than n_clusters={spec.clustering.n_clusters}")
        if len(p.labels) < 2:
            problems.append(f"datasets: {name} has fewer than two labels in its train set")
    if problems:
        raise SpecError(source, problems)
    return prepared


def stage(store: Store, p: PreparedDataset) -> bool:
    """Write the dataset (and its corpus) into the store unless there; True when written."""
    wrote = False
    if p.corpus_files is not None and not is_done(store, p.corpus_prefix):
        for name, data in p.corpus_files.items():
            store.write_bytes(f"{p.corpus_prefix}/{name}", data)
        stats = {"name": p.name, "corpus": p.n_corpus, "train": len(p.train)}
        store.write_bytes(f"{p.corpus_prefix}/{MARKER}", (json.dumps(stats, indent=2) + "\n").encode())
        wrote = True
    if is_done(store, p.prefix):
        return wrote
    for name, data in p.files.items():
        store.write_bytes(f"{p.prefix}/{name}", data)
    stats = {"name": p.name, "train": len(p.train), "test": len(p.test), "labels": list(p.labels)}
    store.write_bytes(f"{p.prefix}/{MARKER}", (json.dumps(stats, indent=2) + "\n").encode())
    return True
