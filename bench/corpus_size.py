"""Accuracy of the default recipe against the corpus size (docs/performance.md, "Bounded cost").

For each dataset: the 64 labeled texts of the grid's sample (budget 64, repetition REP), a
corpus of N other train texts drawn at random (seeded; each smaller corpus inside the larger),
``ctune train`` with the default setting, then ``ctune predict`` on the test texts.
Usage: python -m bench.corpus_size --data-dir ../shared/data --out .corpus-size
       [--datasets ag_news dbpedia] [--sizes 2000 5000 0] [--reps 0]   (0: every other train text)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jobs.contract.sampling import sample_indices


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _accuracy(test: Path, predicted: Path) -> tuple[float, int]:
    gold = [str(json.loads(line)["label"]) for line in test.open()]
    got = [str(json.loads(line)["label"]) for line in predicted.open()]
    return 100 * sum(g == p for g, p in zip(gold, got)) / len(gold), len(gold)


def run_one(data: Path, out: Path, name: str, size: int, rep: int) -> dict:
    rows = [json.loads(line) for line in (data / name / "train.jsonl").open()]
    picked = set(sample_indices(len(rows), 64, rep, 0).tolist())
    others = [r for i, r in enumerate(rows) if i not in picked]
    order = np.random.default_rng(1000 + rep).permutation(len(others))
    n = size or len(others)
    work = out / f"{name}-r{rep}"
    work.mkdir(parents=True, exist_ok=True)
    _write(work / "labeled.jsonl", [rows[i] for i in sorted(picked)])
    _write(work / f"corpus-{n}.jsonl", [{"text": others[i]["text"]} for i in sorted(order[:n])])
    model = work / f"model-{n}"
    ctune = [sys.executable, "-m", "controller.cli"]
    t0 = time.time()
    if not model.exists():
        subprocess.run([*ctune, "train", str(work / "labeled.jsonl"), "--corpus", str(work / f"corpus-{n}.jsonl"),
                        "--out", str(model), "--store", str(out / "store")], check=True)
    t1 = time.time()
    predicted = work / f"predicted-{n}.jsonl"
    subprocess.run([*ctune, "predict", str(model), str(data / name / "test.jsonl"), "--output", str(predicted)],
                   check=True)
    acc, n_test = _accuracy(data / name / "test.jsonl", predicted)
    return {"dataset": name, "rep": rep, "corpus": n, "accuracy": round(acc, 2), "test": n_test,
            "train_s": round(t1 - t0, 1), "predict_s": round(time.time() - t1, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default=".corpus-size")
    ap.add_argument("--datasets", nargs="+", default=["ag_news", "dbpedia"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[2000, 5000, 0])
    ap.add_argument("--reps", nargs="+", type=int, default=[0])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for rep in args.reps:
        for name in args.datasets:
            for size in args.sizes:
                row = run_one(Path(args.data_dir), out, name, size, rep)
                print("corpus-size:", json.dumps(row), flush=True)
                with (out / "results.jsonl").open("a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
