/**
 * bf16 I/O (`io: 'bf16'`) on the CPU runtime: the generated CUDA with its views and output stored
 * as bf16 against the f64 reference run on the bf16-rounded views, for TTT-Linear and TTT-MLP
 * (f32 and bf16 matmul operands, sm_80 and sm_90) and one update rule whose per-token decay and
 * rates stay f32. Builds are cached like tests/cuda-cpu.test.ts's.
 */
import { describe, expect, it } from 'vitest';
import { roundBf16 } from '../compiler/ir/execute.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { type InnerLoopInputs, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import type { TargetOptions } from '../targets/target.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample } from './support/specs.ts';

/** The f32 kernel's tolerance against the f64 reference (relative error), as tests/cuda-cpu.test.ts. */
const TOL = 1e-5;
/** bf16 matmul operands' tolerance, as tests/cuda-cpu.test.ts (derived there). */
const BF16_TOL = 3e-2;
const ARCHS = ['sm_80', 'sm_90'] as const;

/** The call's inputs with every view rounded to bf16: what the kernel reads once they are stored as bf16. */
function roundedViews(inputs: InnerLoopInputs): InnerLoopInputs {
  const views = new Map([...inputs.views].map(([n, t]) => [n, { shape: t.shape, data: t.data.map(roundBf16) }]));
  return { ...inputs, views };
}

/**
 * The output, element by element. The kernel computes y32 from the bf16 views as the f32-I/O
 * kernel would from the same values (a bf16 widens to f32 exactly), so y32 = ref + e with the
 * kernel's own error e, which its tolerance bounds in norm: ‖e‖₂ ≤ tol·‖ref‖₂, hence every
 * |e_i| ≤ tol·‖ref‖₂. The store rounds y32 once to bf16 (8 significant bits), to nearest even:
 * off by at most half an ulp, and an ulp of x in [2^m, 2^(m+1)) is 2^(m-7), so the error is at most
 * 2^-8·|y32_i| ≤ 2^-8·(|ref_i| + |e_i|) (the unit roundoff 2^-8; 2^-9 only at the top of a binade).
 * Together:
 *   |y_i − ref_i| ≤ 2^-8·|ref_i| + (1 + 2^-8)·tol·‖ref‖₂.
 * No slack beyond the kernel's tolerance: views read as anything but their bf16 values (the states
 * check says so too) or an output rounded twice breaks it on some element of a random call.
 */
function expectOutputWithin(got: Tensor, want: Tensor, tol: number, label: string): void {
  expect(got.shape, label).toEqual(want.shape);
  let norm = 0;
  for (const w of want.data) norm += w * w;
  norm = Math.sqrt(norm);
  let worst = -Infinity;
  for (let i = 0; i < want.data.length; i++) {
    const bound = 2 ** -8 * Math.abs(want.data[i]) + (1 + 2 ** -8) * tol * norm;
    worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]) - bound);
    // Stored as bf16: each value is one (NaN here would be an element the kernel never wrote).
    if (roundBf16(got.data[i]) !== got.data[i]) expect.fail(`${label}: output[${i}] = ${got.data[i]} is not a bf16`);
  }
  expect(worst, `${label}: the largest excess over the bound`).toBeLessThanOrEqual(0);
}

/** Runs the bf16-I/O kernel on `named` (the runtime rounds the views as it stores them) and checks it. */
async function expectBf16Io(c: Compiled, named: Map<string, Tensor>, options: TargetOptions): Promise<void> {
  const label = `${c.file.split('/').pop()} ${options.arch} ${options.dtype}`;
  const program = cudaCpuProgram(c, { ...options, io: 'bf16' });
  expect(
    program.tensors.filter((t) => t.bf16).map((t) => t.role),
    'the views and the output are the bf16 tensors',
  ).toEqual([...c.signature.inputs.filter((p) => p.role === 'view').map(() => 'view'), 'output']);
  const loop = await CudaCpuInnerLoop.create(program);
  const inputs = innerLoopInputs(c.signature, named);
  const got = innerLoopOutputTensors(await loop.run(inputs));
  const want = innerLoopOutputTensors(runReference(c.chunk, roundedViews(inputs)));
  const tol = options.dtype === 'bf16' ? BF16_TOL : TOL;
  for (const [name, w] of want) {
    const g = got.get(name);
    expect(g, `${label}: ${name}`).toBeDefined();
    // States, accumulators and optimizer states stay f32: the kernel's own tolerance, on the rounded views.
    if (name === 'output') expectOutputWithin(g!, w, tol, label);
    else expect(relativeError(g!.data, w.data), `${label}: ${name}`).toBeLessThan(tol);
  }
}

describe.each(['ttt_linear.ttt', 'ttt_mlp.ttt'])('bf16 I/O of %s on the CPU against the f64 reference', (spec) => {
  for (const arch of ARCHS)
    for (const dtype of ['f32', 'bf16'] as const)
      it(`${arch}, ${dtype} operands, D=64 K=16`, async () => {
        const c = compileExample(spec, 'auto', { D: 64, K: 16 });
        const named = randomInputs(c.chunk, { B: 1, H: 2, T: 37, start: 5, accum: true, seed: 7 });
        await expectBf16Io(c, named, { arch, dtype });
      });
});

describe('bf16 I/O of an update rule on the CPU: per-token decay and rates stay f32', () => {
  it('rules/gated_deltanet.ttt, sm_90, f32 operands', async () => {
    const c = compileExample('rules/gated_deltanet.ttt', 'auto', { D: 32, K: 8 });
    const named = randomInputs(c.chunk, { B: 2, H: 1, T: 21, start: 3, accum: true, seed: 9 });
    await expectBf16Io(c, named, { arch: 'sm_90', dtype: 'f32' });
  });
});

describe('bf16 I/O: the output is the f32-I/O kernel output rounded once to bf16', () => {
  it('ttt_linear.ttt, sm_90, f32 operands: bitwise', async () => {
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 64, K: 16 });
    const named = randomInputs(c.chunk, { B: 1, H: 2, T: 37, start: 5, accum: true, seed: 7 });
    const inputs = roundedViews(innerLoopInputs(c.signature, named));
    const run = async (io: TargetOptions['io']) =>
      (await CudaCpuInnerLoop.create(cudaCpuProgram(c, { arch: 'sm_90', dtype: 'f32', io }))).run(inputs);
    const [f32, bf16] = [await run('f32'), await run('bf16')];
    expect([...bf16.output.data]).toEqual([...f32.output.data].map(roundBf16));
    for (const [name, t] of f32.states) expect([...bf16.states.get(name)!.data], name).toEqual([...t.data]);
  });
});
