"""Benchmarks: ``make bench``.  Each prints a ratio against a baseline measured in the same run.

* inter-training throughput with length-grouped batches vs plain random batches;
* prediction throughput with length-sorted batches vs batches in corpus order.
Both on the packaged MiniLM and real AG News texts; bigger ratios are better.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jobs.contract.params import Optimization
from jobs.data import default_data_dir, read_examples
from jobs.lib import models


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_training(texts, labels, n_texts: int) -> None:
    tok = models.load_tokenizer("minilm")
    texts, labels = texts[:n_texts], labels[:n_texts]
    results = {}
    for grouped in (False, True):
        model = models.load_classifier("minilm", 50, seed=0)
        args = models.TrainArgs(Optimization(epochs=1, batch_size=32), group_by_length=grouped)
        results[grouped] = timed(lambda m=model, a=args: models.train_classifier(m, tok, texts, labels, a, seed=0))
    print(f"inter-training, {n_texts} texts: plain {n_texts / results[False]:.1f} texts/s, "
          f"length-grouped {n_texts / results[True]:.1f} texts/s, ratio {results[False] / results[True]:.2f}x")


def bench_prediction(texts, n_texts: int) -> None:
    tok = models.load_tokenizer("minilm")
    model = models.load_classifier("minilm", 4, seed=0)
    texts = texts[:n_texts]

    def unsorted():
        import torch

        with torch.inference_mode():
            for i in range(0, len(texts), 128):
                enc = tok(texts[i:i + 128], truncation=True, max_length=128, padding=True, return_tensors="pt")
                model(**enc)

    base = timed(unsorted)
    fast = timed(lambda: models.predict_logits(model, tok, texts, 128))
    print(f"prediction, {n_texts} texts: corpus order {n_texts / base:.1f} texts/s, "
          f"length-sorted {n_texts / fast:.1f} texts/s, ratio {base / fast:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--texts", type=int, default=512)
    args = parser.parse_args()
    data = read_examples(default_data_dir() / "ag_news" / "train.jsonl")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data))[: args.texts * 2]
    texts = [data.texts[i] for i in idx]
    labels = [int(i) % 50 for i in idx]
    bench_prediction(texts, args.texts * 2)
    bench_training(texts, labels, args.texts)


if __name__ == "__main__":
    main()
