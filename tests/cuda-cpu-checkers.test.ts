/**
 * The CPU runtime's checkers catch what they are for: a small hand-written CUDA layer (rows
 * mirrored through shared memory) run correct, then broken on purpose: a shared-memory and a
 * global out-of-bounds write (AddressSanitizer), a missing barrier (ThreadSanitizer, and NaN from
 * the poisoned shared memory without it), a barrier only some threads reach (deadlock). Also: the
 * generated launcher refuses a device with too little shared memory, as on a GPU.
 */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../core/tensor.ts';
import type { CudaCpuMode } from '../runtime/cuda-cpu/build.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import type { CudaCpuProgram } from '../runtime/cuda-cpu/program.ts';
import { innerLoopInputs } from '../runtime/inner-loop.ts';
import { signatureOf } from '../runtime/signature.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample } from './support/specs.ts';

const HEADER = `#include <stddef.h>
#include <cuda_runtime_api.h>
typedef struct mirror_args {
  int B, H, T, start;
  const float* x;
  float* y;
  float* scratch;
  size_t scratch_bytes;
} mirror_args;
extern "C" size_t mirror_scratch_bytes(int B, int H);
extern "C" int mirror_forward(const mirror_args* a, cudaStream_t stream);
extern "C" const char* mirror_last_error(void);
`;

type Bug = 'none' | 'shared out of bounds' | 'global out of bounds' | 'no barrier' | 'divergent barrier';

/** One block per row of T values, one thread per value: y[t] = x[T - 1 - t], through shared memory. */
function source(bug: Bug): string {
  const sharedIndex = bug === 'shared out of bounds' ? 't + 1' : 't';
  const globalIndex = bug === 'global out of bounds' ? 'row + t + 1' : 'row + t';
  const barrier = {
    none: '__syncthreads();',
    'shared out of bounds': '__syncthreads();',
    'global out of bounds': '__syncthreads();',
    'no barrier': '',
    'divergent barrier': 'if (t % 2) __syncthreads(); else __syncwarp();',
  }[bug];
  return `#include <cuda_runtime.h>
#include "mirror.h"
#ifndef TTTC_DYNAMIC_SHARED
#define TTTC_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

__global__ void mirror_kernel(const unsigned n, const float* __restrict__ x, float* __restrict__ y) {
  TTTC_DYNAMIC_SHARED(float, s);
  const unsigned t = threadIdx.x;
  const size_t row = (size_t)blockIdx.x * n;
  s[${sharedIndex}] = x[row + t];
  ${barrier}
  y[${globalIndex}] = s[n - 1 - t];
}

extern "C" size_t mirror_scratch_bytes(int, int) { return 0; }
extern "C" const char* mirror_last_error(void) { return "bad arguments"; }
extern "C" int mirror_forward(const mirror_args* a, cudaStream_t stream) {
  if (a->T < 1 || a->T > 1024) return 1;
  cudaLaunchConfig_t launch = {};
  launch.gridDim = dim3((unsigned)(a->B * a->H));
  launch.blockDim = dim3((unsigned)a->T);
  launch.dynamicSmemBytes = (size_t)a->T * sizeof(float);
  launch.stream = stream;
  return cudaLaunchKernelEx(&launch, mirror_kernel, (unsigned)a->T, a->x, a->y) == cudaSuccess ? 0 : 1;
}
`;
}

function mirror(bug: Bug): CudaCpuProgram {
  return {
    signature: {
      layer: 'Mirror',
      K: 1,
      views: [{ name: 'x', shape: [] }],
      output: [],
      states: [],
      params: [],
      lr: { kind: 'constant', value: 0 },
      scale: { kind: 'none' },
    },
    arch: 'sm_90',
    files: [
      { path: 'mirror.cu', contents: source(bug) },
      { path: 'mirror.h', contents: HEADER },
    ],
    source: 'mirror.cu',
    header: 'mirror.h',
    argsType: 'mirror_args',
    sizes: { B: 'B', H: 'H', T: 'T', start: 'start' },
    tensors: [
      { role: 'view', name: 'x', field: 'x', lead: ['B', 'H', 'T'], shape: [], written: false },
      { role: 'output', name: 'output', field: 'y', lead: ['B', 'H', 'T'], shape: [], written: true },
    ],
    scratch: { pointer: 'scratch', bytes: 'scratch_bytes', size: 'mirror_scratch_bytes' },
    forward: 'mirror_forward',
    lastError: 'mirror_last_error',
  };
}

const B = 2;
const H = 1;
const T = 64;
const x: Tensor = { shape: [B, H, T], data: Float64Array.from({ length: B * H * T }, (_, i) => i + 1) };

async function run(bug: Bug, mode: CudaCpuMode): Promise<Float64Array> {
  const loop = await CudaCpuInnerLoop.create(mirror(bug), mode);
  const out = await loop.run({
    B,
    H,
    T,
    start: 0,
    views: new Map([['x', x]]),
    params: new Map(),
    states: new Map(),
    accums: new Map(),
  });
  return out.output.data;
}

const mirrored = Float64Array.from({ length: B * H * T }, (_, i) => Math.floor(i / T) * T + T - (i % T));

describe('the CPU runtime runs a hand-written kernel', () => {
  for (const mode of ['fast', 'asan', 'tsan'] as const) {
    it(`correct, it mirrors every row (${mode})`, async () => {
      expect(await run('none', mode)).toEqual(mirrored);
    });
  }
});

describe('the checkers catch a broken kernel', () => {
  it('AddressSanitizer: a write past the dynamic shared memory the launch asked for', async () => {
    await expect(run('shared out of bounds', 'asan')).rejects.toThrow(/heap-buffer-overflow[\s\S]*WRITE of size 4/);
  });

  it('AddressSanitizer: a write past the end of an output in global memory', async () => {
    await expect(run('global out of bounds', 'asan')).rejects.toThrow(/heap-buffer-overflow[\s\S]*WRITE of size 4/);
  });

  it('ThreadSanitizer: a missing barrier between a shared-memory write and another thread reading it', async () => {
    await expect(run('no barrier', 'tsan')).rejects.toThrow(/ThreadSanitizer: data race[\s\S]*mirror_kernel/);
  });

  it('without the barrier, threads read shared memory before it is written: NaN (its poison) comes out', async () => {
    const got = await run('no barrier', 'fast');
    expect(got.some(Number.isNaN)).toBe(true);
  });

  it('a barrier that only some threads reach is reported as a deadlock, not a hang', async () => {
    await expect(run('divergent barrier', 'fast')).rejects.toThrow(/deadlock in block \(0, 0, 0\)/);
  });
});

describe('the generated launcher on the emulated device', () => {
  it('refuses a kernel scheduled for sm_90 shared memory on an emulated sm_80, naming both sizes', async () => {
    const c = compileExample('delta_rule.ttt', 'auto', { D: 128, K: 16 });
    const program = { ...cudaCpuProgram(c, { arch: 'sm_90', dtype: 'f32' }), arch: 'sm_80' };
    const loop = await CudaCpuInnerLoop.create(program);
    const inputs = innerLoopInputs(signatureOf(c), randomInputs(c.chunk, { B: 1, H: 1, T: 1, seed: 1 }));
    await expect(loop.run(inputs)).rejects.toThrow(/offers 166912 bytes of shared memory per block; .* needs 230400/);
  });
});
