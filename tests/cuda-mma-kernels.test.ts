/**
 * The generated bf16 CUDA with its products on tensor cores (compiler/schedule/tensor-cores.ts,
 * compiler/kernel/mma.ts): every example run through cuda-cpu for sm_80 and sm_90 against the f64
 * reference and against the reference with bf16 product operands; padded tiles (K = 8 rows in a
 * 16-row tile, an 8-long contraction in a 16-long step); the update stages of TTT-Linear and TTT-MLP
 * update their states from the accumulators of their gradient products, and titans_mlp_memory's
 * (at D = 16) its optimizer state as well; f32 kernels keep FFMA products; and nvcc
 * -Werror builds TTT-Linear and TTT-MLP with mma.sync and ldmatrix in the PTX and no spills; the
 * staging runs clean under AddressSanitizer and ThreadSanitizer.
 * Builds are cached by digest (the cuda-cpu ones shared with tests/cuda-cpu.test.ts).
 *
 * Tolerances. A bf16 kernel rounds each product operand to bf16 (8 significant bits, unit
 * roundoff u = 2^-8) and accumulates in f32. The reference run with precision 'bf16' does exactly
 * that in exact arithmetic with f32 values (compiler/ir/execute.ts), so
 *  - its distance from the f64 reference, e_model, is the error bf16 operand rounding causes for
 *    these inputs (measured 2e-4 to 1.6e-2 over the examples' outputs, states and accumulators);
 *  - the kernel differs from it only by f32 summation order (n 2^-24 relative for a contraction
 *    of n <= 256: 1.5e-5) and by operands whose f32 value lands on the other side of a bf16
 *    rounding boundary than the model's: a fraction of at most about n 2^-24 / 2^-9 = n 2^-15 of them
 *    (<= 2^-7), each off by one bf16 ulp (2^-8), which moves a product by about
 *    2^-8 sqrt(n 2^-15) <= 3.5e-4 (relative, root-mean-square as relativeError measures).
 *    MODEL_TOL = 2^-11 = 4.9e-4 allows that for one product with the rest of the chain on top;
 *    measured: at most 7e-5 (three_layer_mlp's output, three products deep), mostly below 2e-6.
 *    A kernel that rounded differently (truncation, a second rounding, an operand not rounded,
 *    a fragment element in the wrong place) lands near e_model or beyond, far above it.
 *  - where later steps amplify a flipped rounding (a normalisation of the state, as in
 *    lact_swiglu), the flips cost more than the estimate above; how much is measured, not
 *    assumed: e_flip is the distance between the bf16 model run on the inputs and on the inputs
 *    nudged by one f32 ulp (2^-23, alternating signs), i.e. the effect of f32-sized differences
 *    through bf16 rounding, which is all that separates the kernel from the model. The kernel
 *    must be within MODEL_TOL + 4 e_flip (e_flip: 2e-5 for TTT-Linear's output, 1.6e-3 for
 *    lact_swiglu's; the kernel with FFMA products is as far from the model there).
 * Against the f64 reference the kernel is then within e_model + that bound (triangle inequality),
 * and its output must be nearer the bf16 model than the f64 reference is, which shows its
 * operands really were rounded.
 */
import { describe, expect, it } from 'vitest';
import type { Compiled } from '../compiler/pipeline.ts';
import type { Precision } from '../compiler/ir/execute.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import type { CudaCpuMode } from '../runtime/cuda-cpu/build.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { MMA_HEADER_FILE } from '../targets/cuda/mma.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { nudged, worst } from './support/bf16-model.ts';
import { randomInputs } from './support/inputs.ts';
import { cachedPtxBuild, strictFlags } from './support/nvcc.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

const MODEL_TOL = 2 ** -11;
const ARCHS = ['sm_80', 'sm_90'] as const;
/** As the bf16 case of tests/cuda-cpu.test.ts (the same sources, so its builds are reused). */
const SIZE = { D: 64, K: 16, B: 1, H: 2, T: 37, start: 5, accum: true, seed: 3 };
/** Tiles padded in rows (K = 8 of 16) and contraction (8 of 16). */
const PADDED = { D: 32, K: 8, B: 2, H: 1, T: 19, start: 3, accum: true, seed: 7 };

const reference = (c: Compiled, named: Map<string, Tensor>, precision: Precision) =>
  innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named), undefined, precision));

async function checkAgainstReferences(
  spec: string,
  arch: string,
  size: typeof SIZE,
  mode: CudaCpuMode = 'fast',
): Promise<void> {
  const c = compileExample(spec, 'auto', { D: size.D, K: size.K });
  const program = cudaCpuProgram(c, { arch, dtype: 'bf16' });
  expect(program.files.some((f) => f.path === MMA_HEADER_FILE)).toBe(true);
  expect(program.files.find((f) => f.path === program.source)!.contents).toContain('tttc_mma_m16n8k16_bf16(');
  const named = randomInputs(c.chunk, size);
  const f64 = reference(c, named, 'f64');
  const model = reference(c, named, 'bf16');
  const loop = await CudaCpuInnerLoop.create(program, mode);
  const got = innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named)));
  const eModel = worst(model, f64);
  const eFlip = worst(
    reference(
      c,
      nudged(named, (n) => n === 'start'),
      'bf16',
    ),
    model,
  );
  const bound = MODEL_TOL + 4 * eFlip;
  const eKernel = worst(got, model);
  expect(eKernel, `kernel vs the bf16-operand reference (e_model ${eModel}, e_flip ${eFlip})`).toBeLessThan(bound);
  expect(worst(got, f64)).toBeLessThan(eModel + bound);
  // The operands were rounded: the output is nearer the bf16 model than the f64 reference is.
  const output = (m: Map<string, Tensor>) => m.get('output')!.data;
  expect(relativeError(output(got), output(model))).toBeLessThan(
    relativeError(output(f64), output(model)) / 4 + 4 * eFlip,
  );
}

/**
 * The examples and the update-rule examples the CUDA target renders, but titans_mlp_memory, whose
 * f64 reference overflows on these random inputs at D = 64.
 */
const SPECS = [
  ...exampleFiles,
  ...['gated_deltanet.ttt', 'lact_swiglu.ttt', 'per_state_rates.ttt'].map((f) => `rules/${f}`),
];

describe.each(SPECS)('bf16 kernel of %s on tensor cores, on the CPU', (spec) => {
  for (const arch of ARCHS)
    it(`${arch}: D=64 K=16 against the bf16-operand and f64 references`, () =>
      checkAgainstReferences(spec, arch, SIZE));
});

/** Tiles padded in rows (12 of 16) and contraction (24 of 32, 12 of 16). */
const ODD = { D: 24, K: 12, B: 1, H: 2, T: 29, start: 7, accum: true, seed: 13 };

describe('padded tensor-core tiles on the CPU', () => {
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt'])
    for (const size of [PADDED, ODD])
      it(`${spec}, sm_90, D=${size.D} K=${size.K}`, () => checkAgainstReferences(spec, 'sm_90', size));
});

/** Small and short enough that titans_mlp_memory's references stay finite (its state grows on random inputs); its update products still fill tiles. */
const SMALL = { D: 16, K: 16, B: 1, H: 2, T: 19, start: 5, accum: true, seed: 7 };

describe('an update with an optimizer state on tensor cores, on the CPU', () => {
  // Momentum and decay: the epilogue on each accumulator element writes the state, the
  // accumulator and the optimizer state.
  it('rules/titans_mlp_memory.ttt, sm_90, D=16 K=16', () =>
    checkAgainstReferences('rules/titans_mlp_memory.ttt', 'sm_90', SMALL));
});

describe("operands staged, read in place, or loaded from a view's copy", () => {
  /** The prefill kernel's source (the text up to the decode kernel). */
  const prefill = (spec: string, { D, K }: { D: number; K: number }, dtype: 'bf16' | 'tf32x3') => {
    const cuda = renderCuda(compileExample(spec, 'auto', { D, K }), { arch: 'sm_90', dtype });
    const source = cuda.files.find((f) => f.path === cuda.api.source)!.contents;
    return source.slice(source.indexOf(`${cuda.api.kernel}(`), source.indexOf(`${cuda.api.decodeKernel}(`));
  };
  const pack = { bf16: 'tttc_pack_bf16x2(', tf32x3: '__float_as_uint(' } as const;
  const STAGED = "staged in the warp's slice";
  const COPY = "from the view's bf16 copy";

  // So that the runs above (and tests/cuda-tf32x3.test.ts) check every way on full and padded
  // tiles: copies where views' rows fill the tiles and their room costs nothing (TTT-Linear at
  // K = 16, below; TTT-MLP's memory is full), staging and reading in place elsewhere.
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt'])
    for (const dtype of ['bf16', 'tf32x3'] as const)
      it(`${spec} ${dtype}: every way an operand reaches its fragment, on full and padded tiles`, () => {
        const full = prefill(spec, SIZE, dtype);
        expect(full).toContain(pack[dtype]);
        // Copies are bf16 (TTT-Linear's below); tf32x3 products stage the views as f32.
        if (dtype === 'tf32x3') expect(full).not.toContain(COPY);
        const padded = prefill(spec, PADDED, dtype);
        expect(padded).toContain(pack[dtype]);
        expect(padded).toContain(STAGED);
        expect(padded).not.toContain(COPY);
        // Rows and contraction padded where read in place: an element past either is zero.
        expect(prefill(spec, ODD, dtype)).toMatch(/float fa0(lo)? = 0\.0f;\n\s*if \(/);
      });

  it("TTT-Linear's x @ W1: x from its copy, W1's columns read in place", () => {
    // Every warp takes the same 16 rows of x: the view's copy, written once when it is staged,
    // replaces each warp's staging of them. W1 is a state, not a view: a request of its B
    // elements reads 4 contraction rows in the same banks whether staged or read in place, so
    // B skips the store and ldmatrix.
    const source = prefill('ttt_linear.ttt', SIZE, 'bf16');
    const first = source.slice(source.indexOf('product, from line 12'));
    const product = first.slice(0, first.indexOf('__syncthreads'));
    expect(product).toContain(`A loaded with ldmatrix ${COPY}, B read in place`);
    expect(product).toMatch(/tttc_ldmatrix_x4\(fa, &smem_bf16\[\d+ \+ \(lane % 16\) \* 72 \+/);
    expect(product).toMatch(/fb\[0\] = tttc_pack_bf16x2\(smem\[/);
    expect(product).not.toMatch(/__syncwarp/);
    // The view's staging writes the copy beside its f32 rows.
    expect(source).toMatch(/smem_bf16\[\d+ \+ \(e \/ dim_D\) \* 72 \+ e % dim_D\] = __float2bfloat16\(x\);/);
  });

  it("the training kernels load a view's copy in all four orientations", () => {
    // As A or B, the view or its transpose: ldmatrix x4, x4.trans, x2.trans and x2. Both
    // training kernels of TTT-Linear at D = 16 (tests/cuda-mma-backward.test.ts runs them).
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 16, K: 16 });
    const source = renderCudaBackward(c, { arch: 'sm_90', dtype: 'bf16' }).files.find((f) => f.path.endsWith('.cu'))!;
    for (const load of ['x4(fa', 'x4_trans(fa', 'x2(fb', 'x2_trans(fb'])
      expect(source.contents, load).toMatch(
        new RegExp(`tttc_ldmatrix_${load.replace('(', '\\(')}, &smem_bf16\\[\\d+ \\+ \\(`),
      );
  });
});

describe('tensor-core staging under the sanitizers', () => {
  // Staging slices inside the shared memory the kernel declares (AddressSanitizer: allocated at
  // exactly that size), and no lane overwriting rows another still loads (ThreadSanitizer, which
  // sees the warp barriers as the only order between lanes).
  // Both place some products' staging in gaps between the scheduled buffers.
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt'])
    for (const mode of ['asan', 'tsan'] as const)
      it(`${spec}, sm_90, D=32 K=8: ${mode} clean`, () => checkAgainstReferences(spec, 'sm_90', PADDED, mode));
  // The views' copies: inside the declared memory, written by the view's staging and read after
  // its block barrier, and apart from the rows read ahead into slots while they are live.
  for (const mode of ['asan', 'tsan'] as const)
    it(`ttt_linear.ttt, sm_90, D=16 K=16, views' copies: ${mode} clean`, () =>
      checkAgainstReferences('ttt_linear.ttt', 'sm_90', { ...SMALL, seed: 11 }, mode));
});

describe('the state updated in place from the accumulator of its gradient product', () => {
  // TTT-Linear's W1 and TTT-MLP's W1 and W2 update stages compute their gradient product where
  // they read it (ScheduledKernel.updateProducts): on tensor cores, each warp updates its tiles of
  // the state, and the prefill kernel has no loop summing a product element by element left.
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt'])
    for (const arch of ARCHS)
      it(`${spec} ${arch}`, () => {
        const cuda = renderCuda(compileExample(spec), { arch, dtype: 'bf16' });
        const k = cuda.kernel;
        const updates = [...(k.updateProducts ?? [])];
        expect(updates.length).toBeGreaterThan(0);
        for (const [id] of updates) expect(k.tensorCores?.products.has(id), `product %${id}`).toBe(true);
        const source = cuda.files.find((f) => f.path === cuda.api.source)!.contents;
        const prefill = source.slice(
          source.indexOf(`${cuda.api.kernel}(`),
          source.indexOf(`${cuda.api.decodeKernel}(`),
        );
        expect(prefill).not.toMatch(/summed here rather than buffered/);
        expect(prefill).not.toMatch(/product\d+ = product\d+ \+/);
        for (const [, state] of updates)
          expect(prefill).toContain(
            `product on tensor cores: each warp updates its 16x8 tiles of ${state} in registers`,
          );
      });
});

describe('f32 kernels keep FFMA products', () => {
  it.each(exampleFiles)('%s', (spec) => {
    for (const arch of ARCHS) {
      const cuda = renderCuda(compileExample(spec), { arch, dtype: 'f32' });
      expect(cuda.kernel.tensorCores).toBeUndefined();
      // tttc_mma.cuh comes with the cp.async of inputs read ahead, never with its mma or ldmatrix.
      expect(cuda.files.map((f) => f.path).includes(MMA_HEADER_FILE)).toBe(cuda.kernel.prefetch !== undefined);
      expect(cuda.files[0].contents).not.toMatch(/tttc_mma_|tttc_ldmatrix|__nv_bfloat16/);
    }
  });
});

/** The PTX and ptxas log of a bf16 kernel (cached). */
async function nvccBuild(spec: string, arch: string): Promise<{ ptx: string; log: string; kernels: string[] }> {
  const cuda = renderCuda(compileExample(spec), { arch, dtype: 'bf16' });
  const built = await cachedPtxBuild('cuda-mma-kernels', cuda.files, cuda.api.source, strictFlags(arch));
  return { ...built, kernels: [cuda.api.kernel, cuda.api.decodeKernel] };
}

describe('nvcc -Werror builds the bf16 TTT-Linear and TTT-MLP with tensor-core products', () => {
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt'])
    for (const arch of ARCHS)
      it(`${spec} ${arch}: mma.sync and ldmatrix in the PTX, no spills`, async () => {
        const { ptx, log, kernels } = await nvccBuild(spec, arch);
        expect(log).not.toMatch(/warning/i);
        expect(ptx).toMatch(/mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16\.bf16\.f32/);
        expect(ptx).toMatch(/ldmatrix\.sync\.aligned\.m8n8\.x4\.shared\.b16/);
        for (const kernel of kernels) {
          const entry = log.split(/Compiling entry function /).find((b) => b.includes(`${kernel}j`));
          expect(entry, kernel).toBeDefined();
          expect(entry, kernel).toMatch(/0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads/);
        }
      }, 300_000);
});
