"""``ctune predict`` through torch, the ONNX graph (fp32) and the int8 graph, on one version
(docs/performance.md, "Prediction without torch").

One version is trained into a folder registry as a user does it (``ctune train``, the default
setting, the packaged MiniLM): 64 labeled texts of the dataset's train split (the grid's sample),
the rest of the train split as the corpus (bounded as by default), the dev split as the dev set.
Then, one after another on the same machine, each runtime (``--runtime torch|onnx|onnx-int8``)
labels ``--texts`` test texts with the whole command timed (process start, model load and
prediction: what a user waits for) and the dev set: texts per second, agreement of the labels
with torch's, accuracy on the test texts and on the dev set. The gate's word on the int8 graph
(against the fp32 one, on the dev set) is read from the version's record.

Usage: python -m bench.predict_runtimes --data-dir ../shared/data --out .predict [--dataset ag_news]
       [--texts 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from jobs.contract.sampling import sample_indices

CTUNE = [sys.executable, "-m", "controller.cli"]
RUNTIMES = ("torch", "onnx", "onnx-int8")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows))
    return str(path)


def _ctune(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*CTUNE, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"ctune {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def train_version(data: Path, out: Path) -> tuple[str, str]:
    train = _read(data / "train.jsonl")
    picked = {int(i) for i in sample_indices(len(train), 64, 0, 0)}
    labeled = _write(out / "labeled.jsonl", [r for i, r in enumerate(train) if i in picked])
    corpus = _write(out / "corpus.jsonl", [r for i, r in enumerate(train) if i not in picked])
    registry = str(out / "registry")
    t0 = time.time()
    _ctune("train", labeled, "--corpus", corpus, "--dev", str(data / "dev.jsonl"), "--out", registry,
           "--store", str(out / "store"))
    listed = _ctune("models", "ls", registry).stdout.splitlines()
    version = listed[-1].split()[1] if listed[-1].startswith("*") else listed[-1].split()[0]
    print(f"version {version} trained in {time.time() - t0:.0f} s", flush=True)
    return registry, version


def predict(registry: str, texts: str, runtime: str, out: Path) -> tuple[list[str], float]:
    t0 = time.time()
    _ctune("predict", registry, texts, "--runtime", runtime, "--output", str(out))
    seconds = time.time() - t0
    return [r["label"] for r in _read(out)], seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", default="ag_news")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per runtime (the best is reported)")
    args = parser.parse_args(argv)
    data = args.data_dir / args.dataset
    args.out.mkdir(parents=True, exist_ok=True)
    registry, version = train_version(data, args.out)
    test = _read(data / "test.jsonl")[:args.texts]
    texts = _write(args.out / "texts.jsonl", test)
    dev = _read(data / "dev.jsonl")
    results = {}
    for runtime in RUNTIMES:  # warm the version's local copy first: every runtime reads it from the cache
        predict(registry, texts, runtime, args.out / f"warm-{runtime}.jsonl")
    for runtime in RUNTIMES:
        runs = [predict(registry, texts, runtime, args.out / f"{runtime}.jsonl") for _ in range(args.repeats)]
        labels, seconds = runs[0][0], min(s for _, s in runs)
        dev_labels, _ = predict(registry, str(data / "dev.jsonl"), runtime, args.out / f"dev-{runtime}.jsonl")
        results[runtime] = {"labels": labels, "seconds": seconds,
                            "accuracy": sum(a == r["label"] for a, r in zip(labels, test)) / len(test),
                            "dev_accuracy": sum(a == r["label"] for a, r in zip(dev_labels, dev)) / len(dev),
                            "dev_labels": dev_labels}
    record = json.loads((Path(registry) / "versions" / version / "record.json").read_text())
    int8 = record["onnx"]["int8"]
    print(f"\n{args.dataset}: version {version} ({record['setting']}), {len(test)} test texts, {len(dev)} dev texts; "
          f"the gate on the int8 graph against the fp32 one: {int8['gate']['outcome']} ({int8['gate']['why']})")
    print("| runtime | texts/s | vs torch | labels equal to torch's | test accuracy | dev accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    base = results["torch"]
    for runtime, r in results.items():
        agree = sum(a == b for a, b in zip(r["labels"], base["labels"])) / len(test)
        dev_agree = sum(a == b for a, b in zip(r["dev_labels"], base["dev_labels"])) / len(dev)
        print(f"| {runtime} | {len(test) / r['seconds']:.1f} | {base['seconds'] / r['seconds']:.2f}x | "
              f"{100 * agree:.2f}% (dev {100 * dev_agree:.2f}%) | {100 * r['accuracy']:.1f} | "
              f"{100 * r['dev_accuracy']:.1f} |")
    print(f"(whole `ctune predict` commands, best of {args.repeats}; export check on the dev set: labels equal on "
          f"{100 * record['onnx']['agreement']:.2f}%, largest probability difference "
          f"{record['onnx']['max_difference']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
