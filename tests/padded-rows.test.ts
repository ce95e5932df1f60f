/**
 * A chunk's rows past its tokens (the last chunk of a call, when T is not a multiple of the
 * rows) are masked out of every update, but the kernels still compute them. With zeros there, a
 * loss that is singular at a zero row made them inf (here 0.5 / sum(...) over a zero difference),
 * and the mask's 0 · inf made NaN of every state; the reference's backward had NaN gradients the
 * same way. Both now take a copy of the chunk's last token there. On a call whose last chunk is
 * partial, CUDA on the CPU (forward and backward) and WGSL must match the f64 reference, and
 * nothing may be NaN.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { webgpuInnerLoop } from '../cli/link.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { gradientTensors, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { cudaCpuBackwardProgram, cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { worst } from './support/bf16-model.ts';
import { randomInputs } from './support/inputs.ts';
import { referenceBackward } from './support/reference-backward.ts';
import { repoRoot } from './support/specs.ts';

const example = readFileSync(join(repoRoot, 'examples', 'silu_rmsnorm_mlp.ttt'), 'utf8');
const spec = example.replace(/loss\(k: \[D\], v: \[D\]\) = .*/, 'loss(k: [D], v: [D]) = 0.5 / sum(square(f(k) - v))');

function compiled() {
  expect(spec).toContain('0.5 / sum(');
  const r = compileSpec(spec, { file: 'singular.ttt', overrides: new Map([['D', 16]]) });
  if (!r.ok) throw new Error('the singular-loss spec does not check');
  return r.compiled;
}

/** Two full chunks and one of 3 tokens, from position 1. */
const CALL = { B: 1, H: 2, T: 35, start: 1, accum: true, seed: 11 };

describe('rows past a partial chunk with a loss singular at a zero row', () => {
  it('CUDA on the CPU and WGSL match the f64 reference', async () => {
    const c = compiled();
    expect(CALL.T % c.chunk.K).not.toBe(0);
    const inputs = innerLoopInputs(c.signature, randomInputs(c.chunk, CALL));
    const want = innerLoopOutputTensors(runReference(c.chunk, inputs));
    const cuda = await CudaCpuInnerLoop.create(cudaCpuProgram(c, { arch: 'sm_90', dtype: 'f32' }));
    expect(worst(innerLoopOutputTensors(await cuda.run(inputs)), want)).toBeLessThan(1e-5);
    const wgsl = await webgpuInnerLoop(c);
    expect(worst(innerLoopOutputTensors(await wgsl.run(inputs)), want)).toBeLessThan(1e-5);
  }, 120_000);

  it('the CUDA backward matches the f64 reference backward', async () => {
    const c = compiled();
    const { named, inputs, cotangents, want } = referenceBackward(c, CALL, 12);
    const loop = await CudaCpuBackward.create(cudaCpuBackwardProgram(c, { arch: 'sm_90', dtype: 'f32' }));
    const got = await loop.run(inputs, cotangents);
    const kernel = new Map([...innerLoopOutputTensors(got.outputs), ...gradientTensors(got.grads, named)]);
    expect(worst(kernel, want)).toBeLessThan(1e-4);
  }, 120_000);
});
