/**
 * The fused backward with bf16 I/O (`io: 'bf16'`) on the CPU runtime: the checkpointing forward and
 * the backward kernel read the views and the output's cotangent as bf16 and write the output and
 * the views' gradients as bf16, the rest f32. Against the f64 reference backward run on the
 * bf16-rounded views and cotangent, for TTT-Linear and TTT-MLP, and through `tttc run --backend
 * cuda-cpu --io bf16 --cotangents`; and the same check fails once the gradients' stores truncate
 * instead of rounding to nearest even, and once the backward kernel, which reads its bf16 rows
 * ahead with cp.async, no longer waits for them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import { roundBf16 } from '../core/bf16.ts';
import { runKey } from '../core/mangle.ts';
import { viewPorts } from '../core/signature.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import type { CudaCpuProgram } from '../runtime/cuda-cpu/program.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { toSafeTensors } from '../runtime/named-tensors.ts';
import { readSafetensorsFile, toFloat64, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { cudaCpuBackwardProgram } from '../targets/cuda/cpu.ts';
import { bytesPerToken, trainingTensors } from '../targets/cuda/tensors.ts';
import { expectBf16OutputWithin, roundedViews } from './support/bf16-io.ts';
import { randomInputs } from './support/inputs.ts';
import { normals, rng } from './support/random.ts';
import { compileExample, repoRoot } from './support/specs.ts';

/** The f32 backward kernels' tolerance against the f64 reference, as tests/backward-kernels.test.ts. */
const TOL = 1e-4;

/** As tests/backward-kernels.test.ts: a partial trailing mini-batch, a nonzero start, carried accumulators. */
const CALL = { B: 2, H: 2, T: 13, start: 2, accum: true, rates: 0.3 };

interface Case {
  c: Compiled;
  named: Map<string, Tensor>;
  /** Cotangents of every output, by output name; the output's as given, before it is stored as bf16. */
  ct: Map<string, Tensor>;
}

function randomCase(spec: string, seed: number): Case {
  const c = compileExample(spec, 'auto', { D: 8, K: 4 });
  const named = randomInputs(c.chunk, { ...CALL, seed });
  const outs = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
  const r = rng(seed + 1);
  const ct = new Map([...outs].map(([n, t]) => [n, { shape: t.shape, data: normals(r, t.data.length) }]));
  return { c, named, ct };
}

/**
 * The f64 reference backward on what the bf16-I/O kernels read: the views and the output's
 * cotangent rounded to bf16 (a bf16 widens to f32 exactly, so the kernels compute on these values).
 */
function referenceOnRounded({ c, named, ct }: Case) {
  const inputs = roundedViews(innerLoopInputs(c.signature, named));
  const checkpoints: Checkpoints = [];
  const outputs = runReference(c.chunk, inputs, checkpoints);
  const output = ct.get('output')!;
  const rounded = new Map([...ct, ['output', { shape: output.shape, data: output.data.map(roundBf16) }]]);
  const cotangents = innerLoopCotangents(c.signature, inputs, rounded);
  const grads = runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents);
  return { outputs: innerLoopOutputTensors(outputs), grads: gradientTensors(grads, named) };
}

/** Runs `program` on the case (the runtime rounds the bf16 tensors as it stores them). */
async function run(program: CudaCpuProgram, { c, named, ct }: Case) {
  const loop = await CudaCpuBackward.create(program);
  const inputs = innerLoopInputs(c.signature, named);
  const got = await loop.run(inputs, innerLoopCotangents(c.signature, inputs, ct));
  return { outputs: innerLoopOutputTensors(got.outputs), grads: gradientTensors(got.grads, named) };
}

/**
 * Every tensor against the reference on the rounded values. The output and the views' gradients
 * are stored as bf16: each is the f32 kernels' value (within TOL in norm) rounded once to nearest
 * even, 2^-8 relative at most, the bound support/bf16-io.ts derives. The rest are f32: within TOL.
 */
function expectWithin(
  got: Map<string, Tensor>,
  want: Map<string, Tensor>,
  bf16: ReadonlySet<string>,
  label: string,
): void {
  expect([...got.keys()].sort(), label).toEqual([...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name)!;
    if (bf16.has(name)) expectBf16OutputWithin(g, w, TOL, `${label}: ${name}`);
    else expect(relativeError(g.data, w.data), `${label}: ${name}`).toBeLessThan(TOL);
  }
}

/** The gradients' keys stored as bf16: the views'. */
const viewGradients = (c: Compiled) => new Set(viewPorts(c.signature).map((p) => runKey({ ...p, grad: true })));

describe.each(['ttt_linear.ttt', 'ttt_mlp.ttt'])('the bf16-I/O backward of %s through cuda-cpu', (spec) => {
  it('matches the f64 reference backward on the bf16-rounded views and cotangent', async () => {
    const k = randomCase(spec, 11);
    const program = cudaCpuBackwardProgram(k.c, { arch: 'sm_90', dtype: 'f32', io: 'bf16' });
    expect(
      program.tensors.filter((t) => t.bf16).map((t) => `${t.role} ${t.of?.role ?? t.role}`),
      'the views, the output, its cotangent and the views gradients are the bf16 tensors',
    ).toEqual([
      ...viewPorts(k.c.signature).map(() => 'view view'),
      'output output',
      'cotangent output',
      ...viewPorts(k.c.signature).map(() => 'gradient view'),
    ]);
    const got = await run(program, k);
    const want = referenceOnRounded(k);
    expectWithin(got.outputs, want.outputs, new Set(['output']), `${spec} outputs`);
    expectWithin(got.grads, want.grads, viewGradients(k.c), `${spec} gradients`);
  });
});

describe('the bound on the bf16 gradients', () => {
  it('fails once the gradients are stored truncated instead of rounded to nearest even', async () => {
    const k = randomCase('ttt_linear.ttt', 11);
    const program = cudaCpuBackwardProgram(k.c, { arch: 'sm_90', dtype: 'f32', io: 'bf16' });
    // Only the gradient stores (`grad_out_...[i] = __float2bfloat16_rn(...)`) truncate.
    const truncating = program.files.map((f) =>
      f.path === program.source
        ? {
            ...f,
            contents: f.contents.replace(/(grad_out_\w+\[[^\n]*\] = )__float2bfloat16_rn\(/g, '$1__float2bfloat16_rz('),
          }
        : f,
    );
    expect(truncating.find((f) => f.path === program.source)!.contents).toContain('__float2bfloat16_rz(');
    const got = await run({ ...program, files: truncating }, k);
    const want = referenceOnRounded(k);
    for (const name of viewGradients(k.c))
      expect(() => expectBf16OutputWithin(got.grads.get(name)!, want.grads.get(name)!, TOL, name), name).toThrow();
  });
});

describe('the bf16-I/O backward reads its bf16 rows ahead (compiler/schedule/prefetch.ts)', () => {
  it("as bf16 in both kernels, and the gradients fail the check without the backward kernel's wait", async () => {
    const k = randomCase('ttt_linear.ttt', 11);
    const options = { arch: 'sm_90', dtype: 'f32', io: 'bf16' } as const;
    const { api, kernels } = renderCudaBackward(k.c, options);
    for (const [which, kernel] of Object.entries(kernels)) {
      const slots = [...(kernel.prefetch?.values() ?? [])];
      expect(slots.length, which).toBeGreaterThan(0);
      expect(
        slots.every((s) => s.elementBytes === 2),
        `${which}: every input read ahead is stored as bf16`,
      ).toBe(true);
    }
    const program = cudaCpuBackwardProgram(k.c, options);
    // The backward kernel is the file's last: its waits from its definition on.
    const withoutWait = program.files.map((f) => {
      if (f.path !== program.source) return f;
      const from = f.contents.indexOf(`${api.kernel}(`);
      const rest = f.contents.slice(from).replaceAll('tttc_cp_async_wait<0>();', '');
      return { ...f, contents: f.contents.slice(0, from) + rest };
    });
    expect(withoutWait).not.toEqual(program.files);
    const got = await run({ ...program, files: withoutWait }, k);
    expect(() => expectWithin(got.grads, referenceOnRounded(k).grads, viewGradients(k.c), 'gradients')).toThrow();
  });
});

describe('tttc run --backend cuda-cpu --io bf16 --cotangents', () => {
  it("writes the bf16-I/O backward's gradients (as F32 values) within the bound", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-cuda-cpu-bf16-io-backward-cli-'));
    // The case and sizes of the TTT-Linear test above, so the build is shared.
    const k = randomCase('ttt_linear.ttt', 11);
    await writeSafetensorsFile(join(dir, 'in.safetensors'), toSafeTensors(k.named, 'F32'));
    await writeSafetensorsFile(join(dir, 'ct.safetensors'), toSafeTensors(k.ct, 'F32'));
    let log = '';
    const io = { out: (t: string) => (log += t), err: (t: string) => (log += t) };
    const spec = join(repoRoot, 'examples', 'ttt_linear.ttt');
    const args = ['-D', 'D=8', '-D', 'K=4', '--backend', 'cuda-cpu', '--arch', 'sm_90', '--io', 'bf16'];
    const files = ['--inputs', join(dir, 'in.safetensors'), '--cotangents', join(dir, 'ct.safetensors')];
    const code = await main(['run', spec, ...args, ...files, '--out', join(dir, 'out.safetensors')], io);
    expect(code, log).toBe(0);
    const file = await readSafetensorsFile(join(dir, 'out.safetensors'));
    // The files hold F32 values: the run rounds the views and the output's cotangent as it stores them.
    const want = referenceOnRounded(k);
    const got = new Map(
      [...want.grads.keys()].map((n) => [n, { shape: file.get(n).shape, data: toFloat64(file.get(n)) }]),
    );
    expectWithin(got, want.grads, viewGradients(k.c), 'run gradients');
  });
});

describe("the backward kernel's global memory per token", () => {
  it('ttt_linear.ttt at D = 64: the views, the cotangent of the output and the views gradients at 2 bytes', () => {
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 64, K: 16 });
    const D = 64;
    // Read: the views k, v, q and the output's cotangent (D each) and lr (1); written: the
    // gradients of the views and of lr. lr and its gradient stay 4 bytes.
    const bytes = (element: number) => ({ read: 4 * D * element + 4, written: 3 * D * element + 4 });
    expect(bytesPerToken(trainingTensors(c.signature, 'f32').backward)).toEqual(bytes(4));
    expect(bytesPerToken(trainingTensors(c.signature, 'bf16').backward)).toEqual(bytes(2));
  });
});
