#!/bin/sh
# Compiles TTT-Linear for the PyTorch binding and trains the in-context regression model on the
# CPU (a few minutes on 2 cores): examples/train/run.sh [OUT_DIR] [train.py options...]
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/train}
[ $# -gt 0 ] && shift
node "$root/bin/tttc.mjs" compile "$root/examples/ttt_linear.ttt" --target cuda -D D=16 -D K=8 --out "$out"
TTTC_CUDA_CPU_INCLUDE="$root/runtime/cuda-cpu/include" "${PYTHON:-python3}" "$root/examples/train/train.py" \
  "$out/ttt_linear_layer.py" --plot "$out/train-loss.svg" "$@"
