"""What every fine-tune-like cell shares: its labeled sample, its metrics, its outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from jobs.contract.errors import JobError
from jobs.contract.inputs import CLUSTERS, DATASET
from jobs.contract.outputs import METRICS, PREDICTIONS, SAMPLE, read_cluster_ids
from jobs.contract.params import SampleParams
from jobs.contract.sampling import cluster_sample_indices, sample_indices
from jobs.contract.staging import TEST, TRAIN, labeled_cluster_ids, read_label_names, read_split
from jobs.data import Examples
from jobs.lib.runner import StepContext


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


def train_cluster_ids(ctx: StepContext, n_train: int) -> list[int]:
    """The cluster ids of the train texts (the corpus that was clustered starts with them)."""
    return labeled_cluster_ids(read_cluster_ids(ctx.store, ctx.input(CLUSTERS)), n_train)


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


def _index(labels, index: dict[str, int], what: str) -> list[int]:
    unknown = sorted({str(y) for y in labels if y not in index})
    if unknown:
        raise JobError(f"{what} labels not in the train set: {', '.join(unknown[:5])}")
    return [index[y] for y in labels]


def load_cell_data(ctx: StepContext[SampleParams]) -> CellData:
    dataset = ctx.input(DATASET)
    train = read_split(ctx.store, dataset, TRAIN)
    test = read_split(ctx.store, dataset, TEST)
    names = read_label_names(ctx.store, dataset)
    index = {name: i for i, name in enumerate(names)}
    test_labels = _index(test.labels, index, "test")
    p = ctx.params
    if p.sampling == "cluster":
        sample = cluster_sample_indices(train_cluster_ids(ctx, len(train)), p.budget, p.repetition, p.sample_seed)
    else:
        sample = sample_indices(len(train), p.budget, p.repetition, p.sample_seed)
    sample_labels = _index([train.labels[i] for i in sample], index, "train")
    return CellData(train, test, names, sample, sample_labels, test_labels)


def write_cell(ctx: StepContext[SampleParams], data: CellData, pred: list[int], extra: dict) -> dict:
    """Write sample.json, predictions.jsonl and metrics.json; returns the metrics."""
    metrics = {
        **evaluate(data.test_labels, pred, data.names),
        "budget": ctx.params.budget,
        "repetition": ctx.params.repetition,
        "classes_in_sample": len(set(data.sample_labels)),
        **extra,
    }
    ctx.put_json(SAMPLE, {"indices": data.sample.tolist()})
    ctx.put_bytes(PREDICTIONS, "".join(
        json.dumps({"label": data.names[p], "gold": data.names[g]}) + "\n"
        for p, g in zip(pred, data.test_labels)).encode())
    ctx.put_json(METRICS, metrics)
    return metrics
