"""Retraining rounds on shipped datasets, as a user meets them (docs/registry.md, "Rounds,
measured").

Per dataset ``NAME`` or ``NAME:LABEL`` (LABEL held out of the first round):

1. round 1: ``ctune train`` into a folder registry: 64 labeled texts (the grid's sample, drawn
   among the texts not of LABEL), the corpus = the other train texts not of LABEL (without a
   LABEL: half of them), the dev set = the dataset's dev texts not of LABEL;
2. round 2: the same labeled texts, the corpus = every other train text (the LABEL's texts,
   or the other half, are new); its report (emerging topics, label shift, dev coverage) printed;
3. round 3, two ways from round 2: its batch (``ctune suggest --registry``) labeled with the
   gold labels and added to the labeled texts, against as many texts drawn at random from the
   round's corpus (``--draws`` draws); each version scored with ``ctune predict`` on the
   dataset's whole dev set: the gain over round 2's version.

And ``--trials`` resampled same-mix rounds, the round's own test without the models: a corpus
of ``--old`` train texts, then ``--new`` more of the same mix, clustered together with the
reference sIB; a trial fails when a cluster is flagged as emerging. With LABEL, as many trials
where the old texts hold no LABEL and the new are of the dataset's mix: whether the clusters
flagged hold mostly LABEL's texts.

Usage: python -m bench.rounds --data-dir ../shared/data --out .rounds [--datasets ag_news:Sci/Tech dbpedia]
       [--limit 3000] [--draws 3] [--trials 20] [--skip-rounds]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from jobs.contract.params import ClusterParams
from jobs.contract.sampling import sample_indices
from jobs.lib.drift import emerging_clusters

CTUNE = [sys.executable, "-m", "controller.cli"]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict], keys=("text", "label")) -> str:
    path.write_text("".join(json.dumps({k: r[k] for k in keys}) + "\n" for r in rows))
    return str(path)


def _ctune(*args: str, ok=(0,)) -> subprocess.CompletedProcess:
    result = subprocess.run([*CTUNE, *args], capture_output=True, text=True)
    if result.returncode not in ok:
        raise SystemExit(f"ctune {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def _newest(registry: Path) -> dict:
    records = [json.loads(p.read_text()) for p in registry.glob("versions/*/record.json")]
    return max(records, key=lambda r: r["created"])


def _accuracy(registry: Path, version: str, dev: Path, work: Path) -> float:
    out = work / f"dev-{version}.jsonl"
    if not out.exists():
        _ctune("predict", f"{registry}@{version}", str(dev), "--output", str(out))
    gold = [r["label"] for r in _read(dev)]
    got = [r["label"] for r in _read(out)]
    return 100 * sum(g == p for g, p in zip(gold, got)) / len(gold)


def rounds(data: Path, out: Path, spec: str, limit: int, draws: int, extra: list[str]) -> dict:
    name, _, held = spec.partition(":")
    train, dev = _read(data / name / "train.jsonl"), _read(data / name / "dev.jsonl")
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    kept = [i for i, r in enumerate(train) if r["label"] != held]
    picked = {kept[i] for i in sample_indices(len(kept), 64, 0, 0)}
    labeled = [train[i] for i in sorted(picked)]
    rest = [r for i, r in enumerate(train) if i not in picked]
    old = [r for r in rest if r["label"] != held] if held else rest[: len(rest) // 2]
    new = [r for r in rest if r["label"] == held] if held else rest[len(rest) // 2:]
    registry, store = work / "registry", str(out / "store")
    common = ["--dev", _write(work / "dev-gate.jsonl", [r for r in dev if r["label"] != held]), "--out", str(registry),
              "--store", store, "--corpus-limit", str(limit), *extra]
    t0 = time.time()
    _ctune("train", _write(work / "labeled1.jsonl", labeled), "--corpus",
           _write(work / "corpus1.jsonl", old, ("text",)), *common)
    corpus2 = _write(work / "corpus2.jsonl", old + new, ("text",))
    second = _ctune("train", str(work / "labeled1.jsonl"), "--corpus", corpus2, *common, ok=(0, 4, 5))
    v2 = _newest(registry)
    print(f"\n== {name}: round 2 ({time.time() - t0:.0f} s for rounds 1 and 2)", flush=True)
    print("\n".join(line for line in second.stderr.splitlines() if not line.startswith(("  ...", "[")))[-4000:])
    gold = {r["text"]: r["label"] for r in train}
    batch_file = work / "batch.jsonl"
    _ctune("suggest", "--registry", f"{registry}@{v2['version']}", "--output", str(batch_file))
    batch = [{"text": r["text"], "label": gold[r["text"]]} for r in _read(batch_file)]
    full_dev = Path(_write(work / "dev-all.jsonl", dev))
    base = _accuracy(registry, v2["version"], full_dev, work)
    labeled_texts = {r["text"] for r in labeled}
    pool = [r for r in old + new if r["text"] not in labeled_texts]
    arms = [("batch", batch)] + [(f"random {d}", [pool[i] for i in np.random.default_rng(100 + d).choice(
        len(pool), size=len(batch), replace=False)]) for d in range(draws)]
    result = {"dataset": name, "held_out": held or None, "limit": limit, "round2": v2["drift"],
              "round2_version": v2["version"], "round2_dev_accuracy": round(base, 2), "arms": []}
    for arm, rows in arms:
        file = _write(work / f"labeled3-{arm.replace(' ', '')}.jsonl", labeled + rows)
        _ctune("train", file, "--corpus", corpus2, *common, "--tolerance", "100", ok=(0, 4, 5))
        version = _newest(registry)["version"]
        acc = _accuracy(registry, version, full_dev, work)
        held_n = sum(r["label"] == held for r in rows) if held else None
        result["arms"].append({"arm": arm, "version": version, "dev_accuracy": round(acc, 2),
                               "gain": round(acc - base, 2), "held_label_texts": held_n,
                               "labels": dict(Counter(r["label"] for r in rows))})
        print(f"{name} round 3, {arm}: dev accuracy {acc:.1f} (gain {acc - base:+.1f}); labels "
              f"{dict(Counter(r['label'] for r in rows))}", flush=True)
    return result


def _cluster(texts: list[str]) -> np.ndarray:
    from jobs.kinds.cluster import cluster_counts
    from jobs.lib.textfeatures import StemmedBagOfWords

    params = ClusterParams()
    counts = StemmedBagOfWords(max_features=params.max_features).fit_transform(texts)
    return cluster_counts(counts, params)[0]


def trials(data: Path, spec: str, n: int, n_old: int, n_new: int) -> dict:
    name, _, held = spec.partition(":")
    train = _read(data / name / "train.jsonl")
    same, found = [], []
    for t in range(n):
        rng = np.random.default_rng(2000 + t)
        order = rng.permutation(len(train))
        texts = [train[i]["text"] for i in order[: n_old + n_new]]
        new = np.arange(len(texts)) >= n_old
        same.append(len(emerging_clusters(_cluster(texts), new, 0.01)))
        if held:
            old = [i for i in order if train[i]["label"] != held][:n_old]
            fresh = [i for i in order if i not in set(old)][:n_new]
            rows = [train[i] for i in old + fresh]
            ids = _cluster([r["text"] for r in rows])
            flags = emerging_clusters(ids, np.arange(len(rows)) >= n_old, 0.01)
            majority = [Counter(rows[i]["label"] for i in np.flatnonzero(ids == f["cluster"])).most_common(1)[0][0]
                        for f in flags]
            found.append({"flagged": len(flags), "held_majority": sum(m == held for m in majority)})
        print(f"{name} trial {t}: same mix flagged {same[-1]}" + (f"; with {held} new: {found[-1]}" if held else ""),
              flush=True)
    return {"dataset": name, "held_out": held or None, "trials": n, "old": n_old, "new": n_new,
            "same_mix_flagged": same, "same_mix_clean": sum(1 for s in same if s == 0), "held": found}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--out", default=".rounds")
    ap.add_argument("--datasets", nargs="+", default=["ag_news:Sci/Tech", "dbpedia"])
    ap.add_argument("--limit", type=int, default=3000)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--old", type=int, default=3000)
    ap.add_argument("--new", type=int, default=1000)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--skip-rounds", action="store_true")
    ap.add_argument("--skip-trials", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data_dir)
    for spec in args.datasets:
        if not args.skip_rounds:
            extra = ["--model", args.model, "--clusters", str(args.clusters)]
            row = rounds(data, out, spec, args.limit, args.draws, extra)
            with (out / "rounds.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
        if not args.skip_trials and args.trials:
            row = trials(data, spec, args.trials, args.old, args.new)
            print("trials:", json.dumps({k: v for k, v in row.items() if k != "held"}), flush=True)
            with (out / "trials.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
