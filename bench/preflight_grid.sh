#!/usr/bin/env bash
# The GPU grid's path (bench/prepare_grid.sh, then bench/device_grid.sh) run here on CPU, under
# the GPU image's package versions (bench/gpu-image.txt) and without what the image lacks, on
# bench/preflight.yaml (every setting of the recipe, small data): what would stop a GPU run
# shows here first. About 40 minutes on 2 cores; everything under .preflight/ (git-ignored).
# Usage: bash bench/preflight_grid.sh   (exit 0 when every step ran; results in .preflight/out)
set -euo pipefail
cd "$(dirname "$0")/.."
P=$PWD/.preflight
V=$P/venv
if [ ! -x "$V/bin/python3" ]; then
  python3 -m venv "$V"
  # torch at the lock's version; the rest at the GPU image's, not the lock's (the point here)
  "$V/bin/pip" install -q -c lock/torch.in torch
  "$V/bin/pip" install -q -c lock/torch.in -r bench/gpu-image.txt
fi
PYVER=$("$V/bin/python3" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
GPU_DIR=$P/gpu STORE=$P/store PYVER=$PYVER bash bench/prepare_grid.sh bench/preflight.yaml
rm -rf "$P/work" "$P/out"
PATH="$V/bin:$PATH" GPU_DIR=$P/gpu WORK_DIR=$P/work OUT=$P/out SPECS=bench/preflight.yaml CTUNE_THREADS=1 \
  bash bench/device_grid.sh 2
