/**
 * A spec's constants as the C-like targets write them. JavaScript writes an integer below 1e21
 * without an exponent, which C and WGSL read as an integer literal ("100000000000000000000f" does
 * not compile; as WGSL it overflows an integer). Every float literal must read back as the same
 * number and as a float: a spec with a 1e20 in it compiles for CUDA (run on the CPU against the
 * f64 reference) and for WGSL (Dawn creates the shader module).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { relativeError } from '../core/tensor.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { compileShader } from '../runtime/webgpu/shader.ts';
import { floatLiteral } from '../targets/clike/literals.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { cudaFloat } from '../targets/cuda/dialect.ts';
import { wgslManifest } from '../targets/wgsl/render.ts';
import { randomInputs } from './support/inputs.ts';
import { repoRoot } from './support/specs.ts';

/** A C or WGSL floating-point literal: digits with a point, an exponent, or both (a leading sign in parentheses). */
const FLOAT = /^\(?-?(\d+\.\d*(e[+-]?\d+)?|\d+e[+-]?\d+)\)?$/;

describe('float literals', () => {
  it.each([0, 1, 7, -2, 0.5, 1e-7, 1e-45, 1e14, 1e15, 1e20, -1e20, 123456789012345678, 1e21, 1e30, 3.4e38])(
    '%s is written as a float that reads back as itself',
    (value) => {
      const text = floatLiteral(value);
      expect(text).toMatch(FLOAT);
      expect(Number(text.replace(/[()]/g, ''))).toBe(value);
      expect(cudaFloat(value)).toMatch(/f\)?$/);
    },
  );

  // The three-layer MLP's middle state scaled by 1e20: tanh saturates, and the constant reaches
  // the kernels as a literal.
  const spec = readFileSync(join(repoRoot, 'examples', 'three_layer_mlp.ttt'), 'utf8').replace(
    'h1 @ W2',
    'h1 @ (W2 * 1e20)',
  );
  const compiled = () => {
    expect(spec).toContain('1e20');
    const r = compileSpec(spec, { file: 'scaled.ttt', overrides: new Map([['D', 16]]) });
    if (!r.ok) throw new Error('the scaled spec does not check');
    return r.compiled;
  };

  it('a 1e20 in a spec: the CUDA kernel builds and matches the f64 reference', async () => {
    const c = compiled();
    const named = randomInputs(c.chunk, { B: 1, H: 2, T: 3 * c.chunk.K + 2, start: 1, accum: true, seed: 11 });
    const inputs = innerLoopInputs(c.signature, named);
    const want = innerLoopOutputTensors(runReference(c.chunk, inputs));
    const loop = await CudaCpuInnerLoop.create(cudaCpuProgram(c, { arch: 'sm_90', dtype: 'f32' }));
    const got = innerLoopOutputTensors(await loop.run(inputs));
    for (const [name, w] of want) expect(relativeError(got.get(name)!.data, w.data), name).toBeLessThan(1e-5);
  }, 120_000);

  it('a 1e20 in a spec: Dawn accepts the WGSL', async () => {
    const { device } = await getGPUDevice();
    const manifest = wgslManifest(compiled());
    expect(manifest.code).toContain('1e+20');
    await compileShader(device, manifest.code, 'scaled');
  });
});
