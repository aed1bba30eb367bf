#!/usr/bin/env bash
# The GPU check: the reference protocol, the speed benchmark and one learned fit on a
# CUDA machine, in under 5 minutes. Run from the repository's root on a machine with a GPU and the
# MNIST files (NEURAL_KMEANS_DATA or --data-dir); writes its tables into ${OUT:-gpu-results}.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-results}"
data="${NEURAL_KMEANS_DATA:-../shared/data}"
mkdir -p "$out"
python3 -m pip install -q -e . 2>&1 | tail -1 || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
PY
export PYTHONUNBUFFERED=1
timeout 200 python3 benchmarks/reference_protocol.py --data-dir "$data" --seeds 0 1 2 \
  --json "$out/reference.json" | tee "$out/reference.md"
timeout 90 python3 benchmarks/speed.py --data-dir "$data" --skip-memmap --out "$out/speed.md"
# The learned mode on MNIST's 10,000 test images: the gradient histograms, the k-NN graph and
# the self-labelled network on the GPU (UMAP and the mixture stay on the CPU).
timeout 150 python3 benchmarks/learned.py --data-dir "$data" --datasets mnist-test \
  --methods learned --seeds 0 --json "$out/learned.json" --out "$out/learned.md"
