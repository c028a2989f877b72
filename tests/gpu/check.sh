#!/usr/bin/env bash
# The GPU check on a bare GPU box (torch, numpy, pandas, yaml, tqdm): `bash tests/gpu/check.sh [OUT]`.
# Writes OUT/gpu_check.json (rewritten after each part) and OUT/gpu_check.txt (the table);
# OUT defaults to $OUT, else ./gpu_check. The Table-1 cell and the trained run use the generated
# synthetic_cifar10 (no files); Fashion-MNIST (30 MB, for the early-exit ratio only) is read from
# data/fashion-mnist/ or the system's datasets, else that part is skipped. About 6 minutes on an
# H200 (the parts' estimates: suite/perf/gpu_check.py PART_ESTIMATE_S). Exit status 1 if an
# assertion failed, as `suite bench --gpu-check`.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-gpu_check}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$out/gpu.txt"
PYTHONPATH=. python3 -m suite.cli bench --gpu-check --data-dir data --record "$out/gpu_check.json" \
  | tee "$out/gpu_check.txt"
exit "${PIPESTATUS[0]}"
