#!/usr/bin/env bash
# Checks every generated CUDA kernel on this machine's GPU against the f64 reference, in one command.
# Needs an NVIDIA GPU, PyTorch with CUDA, nvcc, and compute-sanitizer; to generate the cases also
# node >= 20 with this repository's `npm ci` (or generate them elsewhere and pass the folder).
#
#   scripts/gpu-check.sh         generate build/gpu-cases for this GPU's architecture, then check
#   scripts/gpu-check.sh DIR     check a folder written by `npx tsx scripts/gpu-cases.ts --out DIR --arch sm_XX`
#
# TTTC_ARCH=sm_80 overrides the architecture read from nvidia-smi.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -ge 1 ]]; then
  cases="$1"
else
  cases=build/gpu-cases
  arch="${TTTC_ARCH:-sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '.[:space:]')}"
  npx tsx scripts/gpu-cases.ts --out "$cases" --arch "$arch"
fi
exec python3 scripts/gpu_check.py "$cases"
