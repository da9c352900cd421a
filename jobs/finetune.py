"""The ``finetune`` step: fine-tune on a labeled sample of the train set, evaluate on test."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from jobs import models
from jobs.datasets import read_label_names, read_split
from jobs.intertrain import starting_model
from jobs.step import JobError, StepContext

log = logging.getLogger(__name__)


def sample_indices(n_train: int, budget: int, repetition: int, sample_seed: int) -> np.ndarray:
    """The labeled sample for (budget, repetition): the same for every setting (not stratified)."""
    if budget > n_train:
        raise JobError(f"budget {budget} is larger than the train set ({n_train} texts)")
    rng = np.random.default_rng([sample_seed, budget, repetition])
    return np.sort(rng.choice(n_train, size=budget, replace=False))


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


def run(ctx: StepContext) -> dict:
    params = ctx.params
    models.configure_threads()
    dataset = ctx.input("dataset")
    train = read_split(ctx.store, dataset, "train")
    test = read_split(ctx.store, dataset, "test")
    names = read_label_names(ctx.store, dataset)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({y for y in test.labels if y not in index})
    if unknown:
        raise JobError(f"test labels not in the train set: {', '.join(unknown[:5])}")
    budget, repetition = int(params["budget"]), int(params["repetition"])
    sample = sample_indices(len(train), budget, repetition, int(params.get("sample_seed", 0)))
    texts = [train.texts[i] for i in sample]
    labels = [index[train.labels[i]] for i in sample]
    args = models.TrainArgs.from_params(dict(params))
    source = starting_model(ctx)
    tokenizer = models.load_tokenizer(source)
    seed = int(params.get("seed", 0)) + repetition
    model = models.load_classifier(source, len(names), seed)
    t0 = time.time()
    stats = models.train_classifier(model, tokenizer, texts, labels, args, seed=seed)
    t1 = time.time()
    logits = models.predict_logits(model, tokenizer, list(test.texts), args.max_length)
    t2 = time.time()
    pred = logits.argmax(axis=1).tolist()
    gold = [index[y] for y in test.labels]
    metrics = {
        **evaluate(gold, pred, names),
        "budget": budget,
        "repetition": repetition,
        "classes_in_sample": len(set(labels)),
        **stats,
        "device": str(models.device()),
        "train_s": round(t1 - t0, 3),
        "eval_s": round(t2 - t1, 3),
    }
    ctx.extra["timings"] = {"train_s": metrics["train_s"], "eval_s": metrics["eval_s"]}
    ctx.put_json("sample.json", {"indices": sample.tolist()})
    ctx.put_bytes("predictions.jsonl", "".join(
        json.dumps({"label": names[p], "gold": names[g]}) + "\n" for p, g in zip(pred, gold)).encode())
    ctx.put_json("metrics.json", metrics)
    log.info("budget %d rep %d: accuracy %.4f", budget, repetition, metrics["accuracy"])
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
