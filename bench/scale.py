"""A retraining round's cost against the corpus size (docs/performance.md, "Bounded cost").

Synthetic corpora (each text the first half of one shipped train text joined to the second half
of another, AG News and DBpedia; the smaller corpora are the first texts of the larger, so each
round adds objects after the last) in objects of at most 100,000 texts under an ``s3://`` prefix of a real
SeaweedFS server started here; 64 AG News texts labeled, 500 AG News dev texts. For each size, a
``ctune train`` round into an S3 registry with the store on S3 too, bounded by
``--corpus-limit``: the controller's wall time and peak memory (its own, read from /proc while
it runs), its staging (from its start to the first step's start: reading the corpus from S3,
bounding it, the index, writing the staged dataset), and each step's seconds and peak memory
(its ``_SUCCESS`` record). Inter-training's texts per second projects an epoch over the whole
corpus, were it not bounded.

Usage: python -m bench.scale --data-dir ../shared/data --out .scale [--sizes 10000 100000 1000000]
       [--limit 5000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PART = 100_000


def synthetic_texts(data: Path, n: int, seed: int = 0) -> list[str]:
    texts = [json.loads(line)["text"] for name in ("ag_news", "dbpedia")
             for line in (data / name / "train.jsonl").read_text().splitlines()]
    words = [t.split() for t in texts]
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(words), n), rng.integers(0, len(words), n)
    return [" ".join(words[i][: len(words[i]) // 2] + words[j][len(words[j]) // 2:]) for i, j in zip(a, b)]


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_round(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, float]:
    """The round's process, its wall time and its own peak RSS (MB)."""
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _hwm_mb(proc.pid) or 0.0)
        time.sleep(0.2)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.time() - t0, peak


def step_records(store, since: float) -> list[dict]:
    found = []
    for key in store.list("steps"):
        if key.endswith("/_SUCCESS"):
            record = json.loads(store.read_bytes(key))
            if record.get("started", 0) >= since:
                found.append(record)
    return sorted(found, key=lambda r: r["started"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default=".scale")
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--limit", type=int, default=5_000)
    ap.add_argument("--model", default="minilm")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jobs.storage import open_store
    from tests.seaweed import SeaweedServer

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data_dir)
    server = SeaweedServer(out / "seaweed").start()
    try:
        env = {**os.environ, **server.env}
        os.environ.update(server.env)
        server.create_bucket("scale")
        bucket = open_store("s3://scale")
        texts = synthetic_texts(data, max(args.sizes))
        ag = [json.loads(line) for line in (data / "ag_news" / "train.jsonl").read_text().splitlines()]
        dev = [json.loads(line) for line in (data / "ag_news" / "dev.jsonl").read_text().splitlines()][:500]
        bucket.write_bytes("labeled.jsonl", _jsonl(ag[:64]))
        bucket.write_bytes("dev.jsonl", _jsonl(dev))
        for size in sorted(args.sizes):
            cuts = sorted({0, size, *(c for c in range(0, size, PART)), *(s for s in args.sizes if s < size)})
            for start, end in itertools.pairwise(cuts):  # the corpus grows by objects after the last
                key = f"corpus/part-{start:08d}.jsonl"
                if not bucket.exists(key):
                    bucket.write_bytes(key, _jsonl({"text": t} for t in texts[start:end]))
            started = time.time()
            result, wall, peak = run_round(
                ["train", "s3://scale/labeled.jsonl", "--corpus", "s3://scale/corpus/", "--dev", "s3://scale/dev.jsonl",
                 "--out", "s3://scale/models/synthetic", "--store", "s3://scale/runs", "--corpus-limit",
                 str(args.limit), "--tolerance", "100", "--model", args.model], env)
            if result.returncode not in (0, 4, 5):
                raise SystemExit(f"round at {size} exited {result.returncode}:\n{result.stderr[-3000:]}")
            steps = step_records(open_store("s3://scale/runs"), started)
            first = steps[0]["started"] if steps else time.time()
            row = {"corpus": size, "limit": args.limit, "wall_s": round(wall, 1), "controller_peak_mb": round(peak),
                   "staging_s": round(first - started, 1),
                   "steps": [{"kind": s["kind"], "seconds": s["seconds"], "peak_rss_mb": s.get("peak_rss_mb"),
                              "summary": {k: v for k, v in s.get("summary", {}).items() if k in (
                                  "texts_per_s", "train_s", "n_texts", "texts", "new", "emerging", "batch")}}
                             for s in steps]}
            print("scale:", json.dumps(row), flush=True)
            with (out / "scale.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
