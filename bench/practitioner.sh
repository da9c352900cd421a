#!/usr/bin/env bash
# The practitioner's path as docs/results.md measures it: `ctune train` with the 64 texts of
# the grid's first AG News sample (budget 64, repetition 0, seed 0: what every spec draws) as
# labels and the other train texts as corpus, one store, each setting in turn (the clustering
# and the inter-training computed once and reused), then `ctune predict` on the test texts.
# Usage: bash bench/practitioner.sh [SETTINGS...]   (DATA_DIR, OUT to change where)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-../shared/data}
OUT=${OUT:-.practitioner}
PY=.venv/bin/python
CTUNE=.venv/bin/ctune
settings=("$@")
[ ${#settings[@]} -gt 0 ] || settings=(clust+probe clust+concat clust+concat+self clust)
mkdir -p "$OUT"
$PY - "$DATA_DIR/ag_news" "$OUT" <<'PY'
import json, sys
from pathlib import Path
from jobs.contract.sampling import sample_indices
src, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [json.loads(line) for line in (src / "train.jsonl").open()]
picked = set(sample_indices(len(rows), 64, 0, 0).tolist())
with (out / "labeled.jsonl").open("w") as lab, (out / "corpus.jsonl").open("w") as cor:
    for i, row in enumerate(rows):
        (lab if i in picked else cor).write(json.dumps(row) + "\n")
print(f"{len(picked)} labeled, {len(rows) - len(picked)} corpus texts")
PY
for setting in "${settings[@]}"; do
  model="$OUT/model-${setting//+/-}"
  rm -rf "$model"
  t0=$(date +%s)
  $CTUNE train "$OUT/labeled.jsonl" --corpus "$OUT/corpus.jsonl" --setting "$setting" --out "$model" \
    --store "$OUT/store"
  t1=$(date +%s)
  $CTUNE predict "$model" "$DATA_DIR/ag_news/test.jsonl" --output "$OUT/predicted-${setting//+/-}.jsonl"
  t2=$(date +%s)
  $PY - "$DATA_DIR/ag_news/test.jsonl" "$OUT/predicted-${setting//+/-}.jsonl" "$setting" $((t1 - t0)) $((t2 - t1)) <<'PY'
import json, sys
gold = [str(json.loads(line)["label"]) for line in open(sys.argv[1])]
got = [json.loads(line) for line in open(sys.argv[2])]
pred = [str(r.get("label", r.get("prediction"))) for r in got]
acc = 100 * sum(g == p for g, p in zip(gold, pred)) / len(gold)
print(f"practitioner: {sys.argv[3]}: train {sys.argv[4]} s, predict {sys.argv[5]} s, "
      f"test accuracy {acc:.1f}% on {len(gold)} texts")
PY
done
