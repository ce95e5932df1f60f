#!/usr/bin/env bash
# The GPU benchmark in one command: tttc's generated CUDA kernels for TTT-Linear and TTT-MLP
# (D = 64, K = 16; f32 matmul operands, f32 operands split over three tf32 tensor-core products
# (tf32x3), bf16 operands, and bf16 operands with bf16 views and output in device memory) timed
# against the paper's dual form in plain PyTorch and PyTorch's causal SDPA, each kernel set
# against its floor. bench/gpu/README.md has the details, the time it takes, and how to split it
# over several calls.
#
#   bench/gpu.sh --prepare [DIR]   generate the eight kernels into DIR (default build/bench-gpu)
#                                  for TTTC_ARCH (default: this machine's GPU, else sm_90); needs
#                                  node and this repository's `npm ci`
#   bench/gpu.sh OUT [OPTIONS]     on the GPU: generate the kernels first if they are missing and
#                                  node is here, then run bench/gpu/bench.py with OPTIONS (e.g.
#                                  --tokens 32768 --layers mlp); writes OUT/results.json,
#                                  OUT/tokens-per-second.svg and OUT/bench.log
#
# The lent GPU machines have no node (/work/.library/device/KINDS.md lists none): run --prepare
# here and carry build/bench-gpu with the call. TTTC_BENCH_KERNELS=DIR reads the kernels from DIR.
set -euo pipefail
caller="$PWD"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Paths given on the command line or in the environment are the caller's, not the repository's.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$caller/$1" ;; esac; }
kernels="$(absolute "${TTTC_BENCH_KERNELS:-$PWD/build/bench-gpu}")"

gpu_arch() { echo "sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '.[:space:]')"; }

# Each configuration (bench/gpu/floors.py CONFIGS) and its compile options.
configs=(
  "f32:--dtype f32"
  "f32-128:--dtype f32 --threads 128"
  "tf32x3:--dtype tf32x3"
  "bf16:--dtype bf16"
  "bf16-io:--dtype bf16 --io bf16"
)

prepare() {
  local dir="$1" arch="$2" config name options
  rm -rf "$dir"
  for layer in linear mlp; do
    for config in "${configs[@]}"; do
      name="${config%%:*}"
      read -ra options <<<"${config#*:}"
      ./bin/tttc.mjs compile "examples/ttt_$layer.ttt" --target cuda --arch "$arch" "${options[@]}" -D D=64 -D K=16 --out "$dir/$layer-$name" >/dev/null
    done
  done
  echo "generated the TTT-Linear and TTT-MLP kernels (${configs[*]%%:*}) for $arch in $dir"
}

if [[ "${1:-}" == "--prepare" ]]; then
  dir="$(absolute "${2:-$kernels}")"
  if [[ -n "${TTTC_ARCH:-}" ]]; then arch="$TTTC_ARCH"
  elif command -v nvidia-smi >/dev/null; then arch="$(gpu_arch)"
  else arch=sm_90; fi
  prepare "$dir" "$arch"
  exit 0
fi

if [[ $# -lt 1 || "$1" == -* ]]; then
  sed -n '2,18p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
out="$(absolute "$1")"
shift
if [[ ! -d "$kernels" ]]; then
  if ! command -v node >/dev/null; then
    echo "no kernels in $kernels and no node on this machine: run 'bench/gpu.sh --prepare' where node is, and bring $kernels along" >&2
    exit 1
  fi
  prepare "$kernels" "${TTTC_ARCH:-$(gpu_arch)}"
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 bench/gpu/bench.py --kernels "$kernels" --out "$out/results.json" --svg "$out/tokens-per-second.svg" "$@" 2>&1 | tee "$out/bench.log"
