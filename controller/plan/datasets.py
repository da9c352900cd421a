"""Resolve the spec's datasets, check them against the spec, and stage them into the store.

A staged dataset is content-addressed (``datasets/<name>-<digest>``): the same texts give
the same prefix, so steps keyed by it are reused; new texts give new step ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.plan import datacache
from controller.plan.datacache import DatasetSummary
from controller.plan.spec import DatasetSpec, ExperimentSpec, SpecError, needs_clustering
from jobs.contract.params import clustering_problem
from jobs.contract.staging import TEST, TRAIN, StagedDataset, corpus, stage, staged_dataset
from jobs.contract.steps import is_done
from jobs.contract.texts import count_worded
from jobs.data import DataError, Examples, default_data_dir, find_split, label_names, read_examples
from jobs.storage import Store


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset checked against the spec; its files are built only when it must be staged."""

    name: str
    spec: DatasetSpec
    sources: tuple[str, ...]
    """train, test, and the extra corpus when there is one."""
    summary: DatasetSummary
    staged: tuple[StagedDataset, ...] | None = None
    """The dataset (and its corpus), when this process read them."""

    @property
    def prefix(self) -> str:
        return self.summary.prefix

    @property
    def corpus_prefix(self) -> str:
        return self.summary.corpus_prefix


def source_objects(src: str) -> tuple[Store, str, list[str]]:
    """An ``s3://`` source's store, root and keys: the object, or every .jsonl/.csv under the
    prefix in key order."""
    from jobs.storage import open_store, split_s3_uri

    root, key = split_s3_uri(src)
    store = open_store(root)
    keys = [key] if key and store.exists(key) else [
        k for k in sorted(store.list(key)) if k.endswith((".jsonl", ".csv"))]
    if not keys:
        raise DataError(f"{src}: no .jsonl or .csv objects there")
    return store, root, keys


def read_source(src: str, text_field: str, label_field: str | None) -> Examples:
    """A local .jsonl/.csv file, an ``s3://`` object, or every .jsonl/.csv under an ``s3://``
    prefix (in key order: new files appended under the prefix add texts at the end)."""
    if not src.startswith("s3://"):
        return read_examples(Path(src).expanduser(), text_field, label_field)
    from jobs.data import parse_csv, parse_jsonl

    store, root, keys = source_objects(src)
    texts: list[str] = []
    labels: list[str | None] = []
    for k in keys:
        try:
            raw = store.read_bytes(k).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{root}/{k}: not UTF-8 text ({exc.reason})") from None
        parse = parse_csv if k.endswith(".csv") else parse_jsonl
        part = parse(raw, f"{root}/{k}", text_field, label_field)
        texts += part.texts
        labels += part.labels
    return Examples(tuple(texts), tuple(labels))


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


def _read(d: DatasetSpec, sources: tuple[str, ...]) -> tuple[StagedDataset, ...]:
    """Read, check and normalize one dataset (in memory; nothing is written)."""
    train = _subset(read_source(sources[0], d.text_field, d.label_field), d.max_train, seed=1)
    test = _subset(read_source(sources[1], d.text_field, d.label_field), d.max_test, seed=2)
    labels = tuple(label_names(train.labels))
    unseen = sorted({str(y) for y in test.labels if y not in set(labels)})
    if unseen:
        raise DataError(f"dataset {d.name!r}: test labels absent from train: {', '.join(unseen[:5])}")
    staged = staged_dataset(d.name, {TRAIN: train, TEST: test}, labels,
                            {"name": d.name, "train": len(train), "test": len(test), "labels": list(labels),
                             "nonempty": sum(1 for t in train.texts if t.strip()),
                             "worded": count_worded(train.texts)})
    if d.corpus is None:
        return (staged,)
    texts = corpus(train, read_source(sources[2], d.text_field, None))
    return staged, staged_dataset(f"{d.name}-corpus", {TRAIN: texts}, None,
                                  {"name": d.name, "corpus": len(texts), "train": len(train),
                                   "worded": count_worded(texts.texts)})


def _summary(staged: tuple[StagedDataset, ...]) -> DatasetSummary:
    stats, corpus_stats = staged[0].stats, staged[-1].stats
    return DatasetSummary(staged[0].prefix, staged[-1].prefix, stats["train"], stats["test"],
                          corpus_stats.get("corpus", stats["train"]), tuple(stats["labels"]),
                          stats["nonempty"], corpus_stats["worded"])


def prepare(d: DatasetSpec, data_dir: Path | None) -> PreparedDataset:
    """The dataset's summary: from the cache when its files are unchanged, else read."""
    sources = (_split_path(d, "train", data_dir), _split_path(d, "test", data_dir), *([d.corpus] if d.corpus else []))
    key = datacache.fingerprint(d, list(sources))
    summary = datacache.load(key)
    if summary is not None:
        return PreparedDataset(d.name, d, sources, summary)
    staged = _read(d, sources)
    summary = _summary(staged)
    datacache.save(key, summary)
    return PreparedDataset(d.name, d, sources, summary, staged)


def prepare_all(spec: ExperimentSpec, data_dir: Path | None, source: str) -> dict[str, PreparedDataset]:
    """Prepare every dataset and check the spec against the data; raises SpecError or DataError."""
    prepared = {d.name: prepare(d, data_dir) for d in spec.datasets}
    problems = []
    clustered = needs_clustering(spec)
    for name, p in prepared.items():
        n = p.summary.n_train
        problems += [f"budgets: {b} is larger than the train set of {name} ({n} texts)" for b in spec.budgets if b > n]
        problem = clustering_problem(p.summary.n_corpus, spec.clustering.n_clusters) if clustered else None
        if problem:
            problems.append(f"clustering.n_clusters: {name} has {problem}")
        elif clustered and p.summary.n_worded < spec.clustering.n_clusters:
            problems.append(f"datasets: {name} has {p.summary.n_worded} texts with a word left after stop-word "
                            f"removal, fewer than clustering.n_clusters={spec.clustering.n_clusters}")
        if p.summary.n_nonempty == 0:
            problems.append(f"datasets: every train text of {name} is empty")
        if len(p.summary.labels) < 2:
            problems.append(f"datasets: {name} has fewer than two labels in its train set")
    if problems:
        raise SpecError(source, problems)
    return prepared


def stage_prepared(store: Store, p: PreparedDataset) -> bool:
    """Write the dataset (and its corpus) into the store unless there; True when written."""
    if all(is_done(store, prefix) for prefix in {p.prefix, p.corpus_prefix}):
        return False
    staged = p.staged or _read(p.spec, p.sources)
    if _summary(staged) != p.summary:
        raise DataError(f"dataset {p.name!r} changed while this command ran: run it again")
    wrote = [stage(store, s) for s in reversed(staged)]  # the corpus first: the dataset's marker ends it
    return any(wrote)
