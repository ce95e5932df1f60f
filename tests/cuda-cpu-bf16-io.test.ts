/**
 * bf16 I/O (`io: 'bf16'`) on the CPU runtime: the generated CUDA with its views and output stored
 * as bf16 against the f64 reference run on the bf16-rounded views, for TTT-Linear and TTT-MLP
 * (f32 and bf16 matmul operands, sm_80 and sm_90) and one update rule whose per-token decay and
 * rates stay f32; under AddressSanitizer; bitwise against the f32-I/O kernel rounded; and through
 * `tttc run --backend cuda-cpu --io bf16` (with --cotangents: tests/cuda-cpu-bf16-io-backward.test.ts). Builds are cached like tests/cuda-cpu.test.ts's.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { roundBf16 } from '../core/bf16.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import type { CudaCpuMode } from '../runtime/cuda-cpu/build.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { toSafeTensors } from '../runtime/named-tensors.ts';
import { readSafetensorsFile, toFloat64, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import type { TargetOptions } from '../targets/target.ts';
import { expectBf16OutputWithin, roundedViews } from './support/bf16-io.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample, repoRoot } from './support/specs.ts';

/** The f32 kernel's tolerance against the f64 reference (relative error), as tests/cuda-cpu.test.ts. */
const TOL = 1e-5;
/** bf16 matmul operands' tolerance, as tests/cuda-cpu.test.ts (derived there). */
const BF16_TOL = 3e-2;
const ARCHS = ['sm_80', 'sm_90'] as const;

/** Runs the bf16-I/O kernel on `named` (the runtime rounds the views as it stores them) and checks it. */
async function expectBf16Io(
  c: Compiled,
  named: Map<string, Tensor>,
  options: TargetOptions,
  mode: CudaCpuMode = 'fast',
): Promise<void> {
  const label = `${c.file.split('/').pop()} ${options.arch} ${options.dtype}`;
  const program = cudaCpuProgram(c, { ...options, io: 'bf16' });
  expect(
    program.tensors.filter((t) => t.bf16).map((t) => t.role),
    'the views and the output are the bf16 tensors',
  ).toEqual([...c.signature.inputs.filter((p) => p.role === 'view').map(() => 'view'), 'output']);
  const loop = await CudaCpuInnerLoop.create(program, mode);
  const inputs = innerLoopInputs(c.signature, named);
  const got = innerLoopOutputTensors(await loop.run(inputs));
  const want = innerLoopOutputTensors(runReference(c.chunk, roundedViews(inputs)));
  const tol = options.dtype === 'bf16' ? BF16_TOL : TOL;
  for (const [name, w] of want) {
    const g = got.get(name);
    expect(g, `${label}: ${name}`).toBeDefined();
    // States, accumulators and optimizer states stay f32: the kernel's own tolerance, on the rounded views.
    if (name === 'output') expectBf16OutputWithin(g!, w, tol, label);
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

describe('bf16 I/O under AddressSanitizer: no access outside the 2-byte tensors', () => {
  it('ttt_mlp.ttt, sm_80, f32 operands', async () => {
    const c = compileExample('ttt_mlp.ttt', 'auto', { D: 32, K: 8 });
    const named = randomInputs(c.chunk, { B: 2, H: 1, T: 13, start: 6, accum: true, seed: 5 });
    await expectBf16Io(c, named, { arch: 'sm_80', dtype: 'f32' }, 'asan');
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

describe('tttc run --backend cuda-cpu --io bf16', () => {
  it('writes the bf16 output (as F32 values) of the bf16-I/O kernel; refuses an unknown --io', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-cuda-cpu-bf16-io-cli-'));
    const spec = join(repoRoot, 'examples', 'ttt_linear.ttt');
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 32, K: 8 });
    const named = randomInputs(c.chunk, { B: 1, H: 2, T: 9, start: 2, seed: 7 });
    await writeSafetensorsFile(join(dir, 'in.safetensors'), toSafeTensors(named, 'F32'));
    let out = '';
    const io = { out: (t: string) => (out += t), err: (t: string) => (out += t) };
    const args = ['-D', 'D=32', '-D', 'K=8', '--inputs', join(dir, 'in.safetensors'), '--backend', 'cuda-cpu'];
    const code = await main(['run', spec, ...args, '--io', 'bf16', '--out', join(dir, 'out.safetensors')], io);
    expect(code, out).toBe(0);
    const file = await readSafetensorsFile(join(dir, 'out.safetensors'));
    // The inputs file holds the views as F32: the run rounds them to bf16 as it stores them.
    const want = innerLoopOutputTensors(runReference(c.chunk, roundedViews(innerLoopInputs(c.signature, named))));
    expectBf16OutputWithin(
      { shape: file.get('output').shape, data: toFloat64(file.get('output')) },
      want.get('output')!,
      TOL,
      'run output',
    );
    const bad = await main(['run', spec, ...args, '--io', 'f16', '--out', join(dir, 'x.safetensors')], io);
    expect(bad).not.toBe(0);
    expect(out).toContain("--io must be f32 or bf16, got 'f16'");
  });
});
