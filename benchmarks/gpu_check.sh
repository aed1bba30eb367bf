#!/usr/bin/env bash
# The GPU check: the reference protocol, the speed benchmark, one learned fit and the tests on a
# CUDA machine, in about 6 minutes. Run from the repository's root on a machine with a GPU and the
# MNIST files (NEURAL_KMEANS_DATA or --data-dir); writes its tables into ${OUT:-gpu-results}.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-results}"
data="${NEURAL_KMEANS_DATA:-../shared/data}"
mkdir -p "$out"
# the learned mode needs umap-learn; the tests at the end, pytest and hypothesis
python3 -m pip install -q -e ".[learned]" pytest hypothesis 2>&1 | tail -1 || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
PY
export PYTHONUNBUFFERED=1
timeout 200 python3 benchmarks/reference_protocol.py --data-dir "$data" --seeds 0 1 2 \
  --json "$out/reference.json" | tee "$out/reference.md"
timeout 150 python3 benchmarks/speed.py --data-dir "$data" --skip-memmap --out "$out/speed.md"
# The learned mode on MNIST's 10,000 test images: the gradient histograms, the k-NN graph and
# the self-labelled network on the GPU (UMAP and the mixture stay on the CPU).
timeout 150 python3 benchmarks/learned.py --data-dir "$data" --datasets mnist-test \
  --methods learned --seeds 0 --json "$out/learned.json" --out "$out/learned.md"
# The library's tests that are not marked slow, on the GPU (device="auto" takes it): the
# learned mode, checkpoints and resume, the estimator, model files, checks, batches.
timeout 200 python3 -m pytest -q -m "not slow" -p no:cacheprovider tests/test_learned.py \
  tests/test_checkpoint.py tests/test_estimator.py tests/test_serialization.py \
  tests/test_validation.py tests/test_samples.py 2>&1 | tee "$out/tests.txt"
