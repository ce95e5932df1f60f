/**
 * `--dtype tf32x3`: the products that fit on tensor cores run as mma m16n8k8 on tf32, each f32
 * operand split into a high and a low tf32 part and the product summed from three mma
 * (hi hi + hi lo + lo hi: compiler/schedule/tensor-cores.ts, compiler/kernel/mma.ts,
 * targets/cuda/mma.ts); everything else stays f32. The kernels are held to the f32 kernels' own
 * tolerances against the f64 reference: 1e-5 for the forward (tests/cuda-cpu.test.ts), 1e-4 for
 * the training kernels (tests/backward-kernels.test.ts).
 *
 * Why f32's tolerance holds: tf32 keeps 11 significant bits (u = 2^-11). hi = tf32(x) is within
 * 2^-11 |x|, lo = tf32(x - hi) within 2^-22 |x| of the rest, so hi + lo is x within 2^-22 |x|; the
 * dropped lo lo term is at most 2^-22 |a b|. Each term of a product is then within 3 * 2^-22
 * (7.2e-7) of a b, and the mma sums the terms in f32 as the FFMA loop does (one rounding per mma
 * in cuda-cpu; the hardware's truncating accumulation is bounded in tttc_cuda_cpu_mma.h). A
 * contraction of n terms of mixed sign is then off by about 7.2e-7 sqrt(n) relative where f32
 * FFMA is off by 2^-24 sqrt(n): a few times f32's error, a hundred times under 1e-5. One tf32
 * product (4.9e-4 per term) or bf16 operands (3.9e-3) are far above it: the split is what the
 * tolerance checks. Measured: TTT-Linear 1.0e-7 (f32 FFMA 1.1e-7), TTT-MLP 1.2e-7 (1.5e-7).
 */
import { describe, expect, it } from 'vitest';
import { runReference } from '../compiler/reference/inner-loop.ts';
import type { Tensor } from '../core/tensor.ts';
import type { CudaCpuMode } from '../runtime/cuda-cpu/build.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { cudaCpuBackwardProgram, cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { worst } from './support/bf16-model.ts';
import { randomInputs } from './support/inputs.ts';
import { referenceTraining } from './support/reference-backward.ts';
import { cachedPtxBuild, strictFlags } from './support/nvcc.ts';
import { normals, rng } from './support/random.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

const FORWARD_TOL = 1e-5;
const TRAINING_TOL = 1e-4;
const OPTIONS = (arch: string) => ({ arch, dtype: 'tf32x3' }) as const;
const SIZE = { D: 64, K: 16, B: 1, H: 2, T: 37, start: 5, accum: true, seed: 3 };
/** Tiles padded in rows (12 of 16) and contraction (24 of 32, 12 of 16). */
const ODD = { D: 24, K: 12, B: 1, H: 2, T: 29, start: 7, accum: true, seed: 13 };
/** Rows padded (8 of 16), a contraction of 32 in two steps of 8 per slab. */
const PADDED = { D: 32, K: 8, B: 2, H: 1, T: 19, start: 3, accum: true, seed: 7 };

/** The forward's outputs, states and accumulators: cuda-cpu against the f64 reference. */
async function forwardError(spec: string, arch: string, size: typeof SIZE, mode: CudaCpuMode = 'fast') {
  const c = compileExample(spec, 'auto', { D: size.D, K: size.K });
  const program = cudaCpuProgram(c, OPTIONS(arch));
  expect(program.files.find((f) => f.path === program.source)!.contents).toContain('tttc_mma_m16n8k8_tf32x3(');
  const named = randomInputs(c.chunk, size);
  const want = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
  const loop = await CudaCpuInnerLoop.create(program, mode);
  return worst(innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named))), want);
}

/** As tests/cuda-mma-kernels.test.ts: the examples and update-rule examples whose f64 reference stays finite at D = 64. */
const SPECS = [
  ...exampleFiles,
  ...['gated_deltanet.ttt', 'lact_swiglu.ttt', 'per_state_rates.ttt'].map((f) => `rules/${f}`),
];

describe('tf32x3 forward kernels on the CPU, within the f32 tolerance of the f64 reference', () => {
  it.each(SPECS)('%s, sm_90, D=64 K=16', async (spec) => {
    expect(await forwardError(spec, 'sm_90', SIZE)).toBeLessThan(FORWARD_TOL);
  });
  it('ttt_linear.ttt, sm_80, D=64 K=16', async () => {
    expect(await forwardError('ttt_linear.ttt', 'sm_80', SIZE)).toBeLessThan(FORWARD_TOL);
  });
  it.each([
    { spec: 'ttt_linear.ttt', size: ODD },
    { spec: 'ttt_mlp.ttt', size: ODD },
    { spec: 'ttt_mlp.ttt', size: PADDED },
  ])('$spec, sm_90, padded tiles D=$size.D K=$size.K', async ({ spec, size }) => {
    expect(await forwardError(spec, 'sm_90', size)).toBeLessThan(FORWARD_TOL);
  });
  // The f32 staging slices inside the shared memory the kernel declares (the lanes' order through
  // warp barriers is the bf16 staging's, which tests/cuda-mma-kernels.test.ts runs under ThreadSanitizer).
  it('ttt_mlp.ttt, sm_90, D=32 K=8: AddressSanitizer clean', async () => {
    expect(await forwardError('ttt_mlp.ttt', 'sm_90', PADDED, 'asan')).toBeLessThan(FORWARD_TOL);
  });
});

/** Products that fill 16x8 tiles (K = 16 rows), a partial trailing mini-batch, carried accumulators. */
const TRAINING = { D: 16, K: 16, B: 1, H: 2, T: 21, start: 3, accum: true, rates: 0.3 };

describe('tf32x3 training kernels', () => {
  it.each([
    { spec: 'ttt_linear.ttt', size: TRAINING },
    { spec: 'ttt_linear.ttt', size: { ...ODD, rates: 0.3 } },
    { spec: 'ttt_mlp.ttt', size: TRAINING },
  ])(
    '$spec, sm_90, D=$size.D K=$size.K: every buffered product on tensor cores, within the f32 tolerance',
    async ({ spec, size }) => {
      const c = compileExample(spec, 'auto', { D: size.D, K: size.K });
      const { kernels } = renderCudaBackward(c, OPTIONS('sm_90'));
      for (const [which, k] of Object.entries(kernels)) {
        expect(k.tensorCores?.operands, which).toBe('tf32x3');
        const products = [...k.buffers.keys()].filter((id) => k.program.nodes[id].op.kind === 'matmul');
        for (const id of products) expect(k.tensorCores!.products.has(id), `${which} product %${id}`).toBe(true);
      }
      const named = randomInputs(c.chunk, { ...size, seed: 5 });
      const r = rng(6);
      const outs = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
      const ct = new Map(
        [...outs].map(([n, t]): [string, Tensor] => [n, { shape: t.shape, data: normals(r, t.data.length) }]),
      );
      const loop = await CudaCpuBackward.create(cudaCpuBackwardProgram(c, OPTIONS('sm_90')));
      const inputs = innerLoopInputs(c.signature, named);
      const got = await loop.run(inputs, innerLoopCotangents(c.signature, inputs, ct));
      const kernel = new Map([...innerLoopOutputTensors(got.outputs), ...gradientTensors(got.grads, named)]);
      expect(worst(kernel, referenceTraining(c, named, ct))).toBeLessThan(TRAINING_TOL);
    },
  );
});

describe('nvcc -Werror builds tf32x3 kernels with the split on tensor cores', () => {
  it.each([
    ['ttt_linear.ttt', 'sm_80'],
    ['ttt_mlp.ttt', 'sm_90'],
  ])(
    '%s %s: mma m16n8k8 tf32 and cvt.rna.tf32 in the PTX, no spills',
    async (spec, arch) => {
      const cuda = renderCuda(compileExample(spec), OPTIONS(arch));
      const { ptx, log } = await cachedPtxBuild('cuda-tf32x3', cuda.files, cuda.api.source, strictFlags(arch));
      expect(log).not.toMatch(/warning/i);
      expect(ptx).toMatch(/mma\.sync\.aligned\.m16n8k8\.row\.col\.f32\.tf32\.tf32\.f32/);
      expect(ptx).toMatch(/cvt\.rna\.tf32\.f32/);
      expect(ptx).not.toMatch(/m16n8k16|__nv_bfloat16|cvt\.rn\.bf16/);
      for (const kernel of [cuda.api.kernel, cuda.api.decodeKernel]) {
        const entry = log.split(/Compiling entry function /).find((b) => b.includes(`${kernel}j`));
        expect(entry, kernel).toBeDefined();
        expect(entry, kernel).toMatch(/0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads/);
      }
    },
    300_000,
  );
});
