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

/** A hand-written layer: `x` [B, H, T] in, `y` [B, H, T, ...outputShape] out, the launcher as in source(). */
function program(contents: string, outputShape: number[] = []): CudaCpuProgram {
  return {
    signature: {
      layer: 'Mirror',
      K: 1,
      lr: { kind: 'constant', value: 0 },
      scale: { kind: 'none' },
      inputs: [{ role: 'view', name: 'x', io: 'in', lead: ['B', 'H', 'T'], shape: [] }],
      outputs: [{ role: 'output', name: 'output', io: 'out', lead: ['B', 'H', 'T'], shape: outputShape }],
    },
    arch: 'sm_90',
    files: [
      { path: 'mirror.cu', contents },
      { path: 'mirror.h', contents: HEADER },
    ],
    source: 'mirror.cu',
    header: 'mirror.h',
    argsType: 'mirror_args',
    sizes: { B: 'B', H: 'H', T: 'T', start: 'start' },
    tensors: [
      { role: 'view', name: 'x', field: 'x', lead: ['B', 'H', 'T'], shape: [], written: false },
      { role: 'output', name: 'output', field: 'y', lead: ['B', 'H', 'T'], shape: outputShape, written: true },
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

const mirror = (bug: Bug) => program(source(bug));

async function run(bug: Bug, mode: CudaCpuMode): Promise<Float64Array> {
  return runProgram(mirror(bug), mode);
}

async function runProgram(p: CudaCpuProgram, mode: CudaCpuMode = 'fast', input: Tensor = x): Promise<Float64Array> {
  const loop = await CudaCpuInnerLoop.create(p, mode);
  const out = await loop.run({
    B,
    H,
    T,
    start: 0,
    views: new Map([['x', input]]),
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
    // gated_linear's prefill at D = 128 takes 205,824 bytes on sm_90.
    const c = compileExample('gated_linear.ttt', 'auto', { D: 128, K: 16 });
    const program = { ...cudaCpuProgram(c, { arch: 'sm_90', dtype: 'f32' }), arch: 'sm_80' };
    const loop = await CudaCpuInnerLoop.create(program);
    const inputs = innerLoopInputs(c.signature, randomInputs(c.chunk, { B: 1, H: 1, T: 1, seed: 1 }));
    const error = await loop.run(inputs).then(
      () => undefined,
      (e: Error) => e.message,
    );
    const needs = /offers 166912 bytes of shared memory per block; .* needs (\d+)/.exec(error ?? '');
    expect(needs, error).not.toBeNull();
    expect(Number(needs![1])).toBeGreaterThan(166912);
  });
});

/** Each thread writes 7 values: warp sum (xor shuffles), up by 1, down by 3, lane 5's value, the
 * ballot of x > 40, the block's count of x > 10, and x rounded to bf16. */
const WARP_KERNEL = source('none')
  .replace(
    /__global__[\s\S]*?\n}\n/,
    `__global__ void mirror_kernel(const unsigned n, const float* __restrict__ x, float* __restrict__ y) {
  const unsigned t = threadIdx.x;
  const float v = x[(size_t)blockIdx.x * n + t];
  float sum = v;
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  float* out = y + ((size_t)blockIdx.x * n + t) * 7;
  out[0] = sum;
  out[1] = __shfl_up_sync(0xffffffffu, v, 1);
  out[2] = __shfl_down_sync(0xffffffffu, v, 3);
  out[3] = __shfl_sync(0xffffffffu, v, 5);
  out[4] = (float)__ballot_sync(0xffffffffu, v > 40.0f);
  out[5] = (float)__syncthreads_count(v > 10.0f);
  out[6] = __bfloat162float(__float2bfloat16(v));
}
`,
  )
  .replace('#include <cuda_runtime.h>', '#include <cuda_runtime.h>\n#include <cuda_bf16.h>');

/** bf16 by round-to-nearest-even, from the two bf16 neighbours of an f32 (not from its bits' arithmetic). */
function bf16(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer);
  const down = new Float32Array(new Uint32Array([u[0] & 0xffff0000]).buffer)[0];
  const up = new Float32Array(new Uint32Array([(u[0] & 0xffff0000) + 0x10000]).buffer)[0];
  const [dd, du] = [Math.abs(f[0] - down), Math.abs(up - f[0])];
  if (dd !== du) return dd < du ? down : up;
  return (u[0] >>> 16) % 2 === 0 ? down : up;
}

describe('warp operations, block votes and bf16 in the header', () => {
  it('shuffles, ballots, __syncthreads_count and bf16 rounding (ties to even) give what CUDA defines', async () => {
    // Values with ties for bf16: i + i/256 is halfway between two bf16 numbers for small i.
    const input: Tensor = {
      shape: [B, H, T],
      data: Float64Array.from({ length: B * H * T }, (_, i) => (i % 50) * (1 + 1 / 256)),
    };
    const got = await runProgram(program(WARP_KERNEL, [7]), 'fast', input);
    const want: number[] = [];
    const f32 = (v: number) => Math.fround(v);
    for (let row = 0; row < B * H; row++) {
      const xs = Array.from({ length: T }, (_, t) => f32(input.data[row * T + t]));
      const count = xs.filter((v) => v > 10).length;
      for (let t = 0; t < T; t++) {
        const base = t - (t % 32);
        const lane = t % 32;
        const warp = xs.slice(base, base + 32);
        let ballot = 0;
        warp.forEach((v, l) => (ballot |= v > 40 ? 1 << l : 0));
        want.push(
          warp.reduce((a, b) => a + b, 0),
          lane >= 1 ? xs[t - 1] : xs[t],
          lane + 3 < 32 ? xs[t + 3] : xs[t],
          xs[base + 5],
          ballot >>> 0,
          count,
          bf16(xs[t]),
        );
      }
    }
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) {
      // The xor tree sums in another order than reduce: allow f32 rounding for the sums only.
      if (i % 7 === 0) expect(Math.abs(got[i] - want[i]), `value ${i}`).toBeLessThanOrEqual(1e-4 * Math.abs(want[i]));
      else expect(got[i], `value ${i} (component ${i % 7})`).toBe(f32(want[i]));
    }
  });

  it('ThreadSanitizer sees no race in them', async () => {
    await expect(runProgram(program(WARP_KERNEL, [7]), 'tsan')).resolves.toHaveLength(B * H * T * 7);
  });
});
