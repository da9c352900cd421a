"""Benchmarks: ``make bench``.  Each prints a ratio against a baseline measured in the same run.

* ``ctune plan experiments/paper.yaml`` (3,174 steps) against a bare interpreter's start
  (target: under 1.5 s on 2 cores), cold (datasets read) and warm (dataset summaries cached);
* inter-training throughput with length-grouped batches vs plain random batches;
* prediction throughput with length-sorted batches vs batches in corpus order.
The last two on the packaged MiniLM and real AG News texts; bigger ratios are better.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jobs.contract.params import Optimization
from jobs.data import default_data_dir, read_examples
from jobs.lib import models


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_plan(runs: int = 3) -> None:
    repo = Path(__file__).resolve().parents[1]

    def run(argv: list[str], env: dict) -> float:
        return timed(lambda: subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True))

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "CTUNE_CACHE": cache}
        plan = [sys.executable, "-m", "controller.cli", "plan", "experiments/paper.yaml", "--store", cache + "/store"]
        bare = min(run([sys.executable, "-c", "pass"], env) for _ in range(runs))
        cold = run(plan, env)
        warm = min(run(plan, env) for _ in range(runs))
    print(f"ctune plan experiments/paper.yaml: cold {cold:.2f} s, warm {warm:.2f} s (target 1.5 s); "
          f"a bare interpreter starts in {bare:.2f} s, ratio warm/bare {warm / bare:.1f}x")


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
    parser.add_argument("--only", choices=["plan", "models"])
    args = parser.parse_args()
    if args.only != "models":
        bench_plan()
    if args.only == "plan":
        return
    data = read_examples(default_data_dir() / "ag_news" / "train.jsonl")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data))[: args.texts * 2]
    texts = [data.texts[i] for i in idx]
    labels = [int(i) % 50 for i in idx]
    bench_prediction(texts, args.texts * 2)
    bench_training(texts, labels, args.texts)


if __name__ == "__main__":
    main()
