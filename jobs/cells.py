"""What every fine-tune-like cell shares: its labeled sample, its metrics, its outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from jobs.data import Examples
from jobs.datasets import read_cluster_ids, read_label_names, read_split
from jobs.step import JobError, StepContext


def sample_indices(n_train: int, budget: int, repetition: int, sample_seed: int) -> np.ndarray:
    """The labeled sample for (budget, repetition): the same for every setting (not stratified)."""
    if budget > n_train:
        raise JobError(f"budget {budget} is larger than the train set ({n_train} texts)")
    rng = np.random.default_rng([sample_seed, budget, repetition])
    return np.sort(rng.choice(n_train, size=budget, replace=False))


def allocate_by_size(budget: int, sizes: list[int]) -> list[int]:
    """Labels per cluster, proportional to size with at least one each (the largest clusters
    first when the budget is smaller than the number of clusters)."""
    sizes = np.asarray(sizes, dtype=int)
    if budget > sizes.sum():
        raise JobError(f"budget {budget} is larger than the corpus ({int(sizes.sum())} texts)")
    counts = np.zeros(len(sizes), dtype=int)
    nonempty = np.flatnonzero(sizes > 0)
    counts[nonempty[np.argsort(-sizes[nonempty], kind="stable")][:budget]] = 1
    ideal = budget * sizes / max(int(sizes.sum()), 1)
    for _ in range(budget - int(counts.sum())):  # each next label to the cluster furthest below its share
        deficit = np.where(counts < sizes, ideal - counts, -np.inf)
        counts[int(np.argmax(deficit))] += 1
    return counts.tolist()


def cluster_sample_indices(assignments: list[int], budget: int, repetition: int, sample_seed: int) -> np.ndarray:
    """A sample spread over the clusters by size; random within each cluster."""
    labels = np.asarray(assignments)
    k = int(labels.max()) + 1
    counts = allocate_by_size(budget, np.bincount(labels, minlength=k).tolist())
    rng = np.random.default_rng([sample_seed, budget, repetition, 1])
    picked = [rng.choice(np.flatnonzero(labels == c), size=n, replace=False) for c, n in enumerate(counts) if n]
    return np.sort(np.concatenate(picked))


def evaluate(gold: list[int], pred: list[int], names: list[str]) -> dict:
    ids = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=ids, zero_division=0)
    present = sorted(set(gold))
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        # macro over the classes present in the test set
        "macro_f1": float(f1_score(gold, pred, labels=present, average="macro", zero_division=0)),
        "per_class": {names[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                 "support": int(s[i])} for i in ids},
        "n_test": len(gold),
    }


def read_assignments(ctx: StepContext) -> list[int]:
    return read_cluster_ids(ctx.store, ctx.input("clusters"))


@dataclass(frozen=True)
class CellData:
    """A cell's view of its dataset: the whole train set, the test set, and its labeled sample."""

    train: Examples
    test: Examples
    names: list[str]
    sample: np.ndarray
    sample_labels: list[int]
    test_labels: list[int]

    @property
    def sample_texts(self) -> list[str]:
        return [self.train.texts[i] for i in self.sample]


def load_cell_data(ctx: StepContext) -> CellData:
    dataset = ctx.input("dataset")
    train = read_split(ctx.store, dataset, "train")
    test = read_split(ctx.store, dataset, "test")
    names = read_label_names(ctx.store, dataset)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({y for y in test.labels if y not in index})
    if unknown:
        raise JobError(f"test labels not in the train set: {', '.join(unknown[:5])}")
    p = ctx.params
    args = (int(p["budget"]), int(p["repetition"]), int(p.get("sample_seed", 0)))
    if p.get("sampling", "random") == "cluster":
        sample = cluster_sample_indices(read_assignments(ctx)[:len(train)], *args)  # the corpus starts with train
    else:
        sample = sample_indices(len(train), *args)
    return CellData(train, test, names, sample, [index[train.labels[i]] for i in sample],
                    [index[y] for y in test.labels])


def write_cell(ctx: StepContext, data: CellData, pred: list[int], extra: dict) -> dict:
    """Write sample.json, predictions.jsonl and metrics.json; returns the metrics."""
    metrics = {
        **evaluate(data.test_labels, pred, data.names),
        "budget": int(ctx.params["budget"]),
        "repetition": int(ctx.params["repetition"]),
        "classes_in_sample": len(set(data.sample_labels)),
        **extra,
    }
    ctx.put_json("sample.json", {"indices": data.sample.tolist()})
    ctx.put_bytes("predictions.jsonl", "".join(
        json.dumps({"label": data.names[p], "gold": data.names[g]}) + "\n"
        for p, g in zip(pred, data.test_labels)).encode())
    ctx.put_json("metrics.json", metrics)
    return metrics
