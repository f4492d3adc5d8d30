#!/usr/bin/env bash
# The built-in transformer's GPU run: one GPU, many cores, a fixed wall-time budget.
#
#     tools/train_gpu.sh OUT [MINUTES]
#
# Reuses the shipped tokenizers (the image codebook is deterministic), trains the `gpu`
# configuration's transformer with all but one core rendering scenes, and writes the
# weights to OUT in two halves (a transfer limit of 16 MiB a file) with the log beside
# them. Join them with `python tools/safetensors_parts.py join OUT FILE`.
set -euo pipefail
out=$1
minutes=${2:-8}
run=${RUN:-/tmp/shapes-gpu}
mkdir -p "$run/bundle" "$out"
weights=plugins/shapes/shapes_backend/weights
cp "$weights/image-tokenizer.safetensors" "$weights/text-vocab.json" "$run/bundle/"
# One thread per process: numpy's BLAS would start a thread per core in every worker (15
# workers x 16 threads ran 40x slower on the H200 machine). nproc --all, since plain nproc
# honours OMP_NUM_THREADS.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
workers=$(($(nproc --all) - 1))
PYTHONUNBUFFERED=1 python3 -m shapes_lab.model.train --config gpu --run "$run" \
    --stages transformer --device "${DEVICE:-cuda}" --workers "$workers" --minutes "$minutes"
python3 tools/safetensors_parts.py split "$run/bundle/transformer.safetensors" "$out"
cp "$run/log.txt" "$out/training-log.txt"
cp "$run/config.json" "$out/training-config.json"
