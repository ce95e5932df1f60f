/**
 * The generated CUDA, run on the CPU (runtime/cuda-cpu): every example and unusual spec for sm_80
 * and sm_90 against the f64 reference, bf16 operands, the reference vectors, prefill against decode,
 * and the sanitizer builds (AddressSanitizer, ThreadSanitizer) on every example. Builds are cached
 * (node_modules/.cache/tttc), so a second run compiles nothing.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import type { CudaCpuMode } from '../runtime/cuda-cpu/build.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { toSafeTensors } from '../runtime/named-tensors.ts';
import { readSafetensorsFile, toFloat64, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import type { TargetOptions } from '../targets/target.ts';
import { randomInputs, sliceTokens } from './support/inputs.ts';
import { loadReference, REFERENCE_FILES } from './support/reference-vectors.ts';
import { compileExample, exampleFiles, repoRoot } from './support/specs.ts';
import { UNUSUAL_SPECS } from './specs/unusual.ts';

/** The f32 kernel's tolerance against the f64 reference (relative error), as for WGSL. */
const TOL = 1e-5;
/**
 * bf16 operands keep 8 significant bits: each rounding is off by up to 2^-8 ≈ 3.9e-3 (relative, half
 * an ulp at the bottom of a binade), a product of two rounded operands by up to 7.8e-3, and a mini-batch chains a few matmuls (forward,
 * gradient, update) whose errors add; states and accumulators carry them across mini-batches.
 * 3e-2 is about eight bf16 ulps at unit scale; measured: 2.5e-3 (gated_linear) to 1.6e-2
 * (three_layer_mlp, three matmuls deep). The floor shows the operands really were rounded (an f32
 * kernel is near 1e-7).
 */
const BF16_TOL = 3e-2;
const BF16_FLOOR = 1e-4;
const ARCHS = ['sm_80', 'sm_90'] as const;

/** As tests/wgsl.test.ts: each D in {32, 64, 128} and each K in {8, 16, 32} is covered. */
const SIZES = [
  { D: 32, K: 8, B: 2, H: 3, T: 21, start: 0, accum: false },
  { D: 64, K: 16, B: 1, H: 2, T: 37, start: 5, accum: true },
  { D: 128, K: 32, B: 2, H: 1, T: 40, start: 31, accum: true },
];

/** Per (spec, arch, dtype, mode): the build's time (or the cache's) and the last run's. */
const timings = new Map<string, string>();
afterAll(() => console.log(`cuda-cpu build and run times:\n${[...timings.values()].join('\n')}`));

async function runCpu(
  c: Compiled,
  named: Map<string, Tensor>,
  options: TargetOptions,
  mode: CudaCpuMode = 'fast',
): Promise<Map<string, Tensor>> {
  const loop = await CudaCpuInnerLoop.create(cudaCpuProgram(c, options), mode);
  const started = performance.now();
  const out = innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named)));
  const label = `${c.file.split('/').pop()} ${options.arch} ${options.dtype} ${mode} K=${c.chunk.K} ${[...c.layer.dims].map(([n, v]) => `${n}=${v}`).join(' ')}`;
  timings.set(
    label,
    `${label}: build ${loop.build.seconds.toFixed(2)} s${loop.build.compiled ? '' : ' (cached)'}, ` +
      `run ${(performance.now() - started).toFixed(0)} ms`,
  );
  return out;
}

/** The largest relative error over every output tensor, after checking each is present and shaped. */
function worstError(got: Map<string, Tensor>, want: Map<string, Tensor>, label: string): number {
  let worst = 0;
  for (const [name, w] of want) {
    const g = got.get(name);
    expect(g, `${label}: ${name}`).toBeDefined();
    expect(g!.shape, `${label}: ${name}`).toEqual(w.shape);
    const e = relativeError(g!.data, w.data);
    expect(Number.isNaN(e), `${label}: ${name} has NaN (an element the kernel never wrote?)`).toBe(false);
    worst = Math.max(worst, e);
  }
  return worst;
}

const reference = (c: Compiled, named: Map<string, Tensor>) =>
  innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));

describe.each(exampleFiles)('generated CUDA of %s on the CPU against the f64 reference', (spec) => {
  for (const arch of ARCHS) {
    for (const s of SIZES) {
      it(`${arch} f32, D=${s.D} K=${s.K} B=${s.B} H=${s.H} T=${s.T} start=${s.start}`, async () => {
        const c = compileExample(spec, 'auto', { D: s.D, K: s.K });
        const named = randomInputs(c.chunk, { ...s, seed: s.D + s.K });
        const got = await runCpu(c, named, { arch, dtype: 'f32' });
        expect(worstError(got, reference(c, named), spec)).toBeLessThan(TOL);
      });
    }
    it(`${arch} bf16 operands, D=64 K=16`, async () => {
      const s = SIZES[1];
      const c = compileExample(spec, 'auto', { D: s.D, K: s.K });
      const named = randomInputs(c.chunk, { ...s, seed: 3 });
      const want = reference(c, named);
      const got = await runCpu(c, named, { arch, dtype: 'bf16' });
      const worst = worstError(got, want, spec);
      expect(worst).toBeLessThan(BF16_TOL);
      expect(relativeError(got.get('output')!.data, want.get('output')!.data)).toBeGreaterThan(BF16_FLOOR);
    });
  }
});

describe.each(Object.entries(UNUSUAL_SPECS))('generated CUDA on the CPU: %s', (_, text) => {
  const r = compileSpec(text, { file: 'unusual.ttt' });
  if (!r.ok) throw new Error('an unusual spec does not compile');
  const c = r.compiled;
  const named = randomInputs(c.chunk, { B: 2, H: 2, T: 8, start: 1, accum: true, seed: 11 });
  for (const arch of ARCHS) {
    it(`${arch} f32 matches the reference`, async () => {
      expect(worstError(await runCpu(c, named, { arch, dtype: 'f32' }), reference(c, named), arch)).toBeLessThan(TOL);
    });
  }
});

describe('generated CUDA on the CPU on the published reference vectors', () => {
  for (const file of REFERENCE_FILES) {
    for (const arch of ARCHS) {
      it(`${file}, ${arch}`, async () => {
        const ref = await loadReference(file);
        const spec = ref.kind === 'linear' ? 'ttt_linear.ttt' : 'ttt_mlp.ttt';
        const c = compileExample(spec, 'auto', {
          D: Number(ref.metadata.head_dim),
          K: Number(ref.metadata.mini_batch_size),
        });
        const got = await runCpu(c, ref.inputs, { arch, dtype: 'f32' });
        for (const [name, want] of ref.expected) {
          expect(got.get(name)!.shape, name).toEqual(want.shape);
          expect(relativeError(got.get(name)!.data, want.data), name).toBeLessThan(TOL);
        }
      });
    }
  }
});

/** Calls over tokens [from, to) in turn, each continuing from the last one's state and accumulator. */
async function runInCalls(c: Compiled, named: Map<string, Tensor>, cuts: readonly number[], T: number) {
  const K = c.chunk.K;
  let carried = new Map(named);
  const outputs: Tensor[] = [];
  const bounds = [0, ...cuts, T];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const part = sliceTokens(c.chunk, carried, bounds[i], bounds[i + 1]);
    part.set('start', { shape: [], data: Float64Array.of(bounds[i] % K) });
    const out = await runCpu(c, part, { arch: 'sm_90', dtype: 'f32' });
    outputs.push(out.get('output')!);
    carried = new Map(carried);
    for (const [name, v] of out) if (name !== 'output') carried.set(name, v);
  }
  return { outputs, carried };
}

/** [B, H, t_i, ...] pieces joined along the token axis. */
function joinTokens(parts: readonly Tensor[]): Float64Array {
  const [B, H, , ...rest] = parts[0].shape;
  const width = rest.reduce((a, b) => a * b, 1);
  const T = parts.reduce((n, p) => n + p.shape[2], 0);
  const out = new Float64Array(B * H * T * width);
  let t0 = 0;
  for (const p of parts) {
    const t = p.shape[2];
    for (let bh = 0; bh < B * H; bh++)
      out.set(p.data.subarray(bh * t * width, (bh + 1) * t * width), (bh * T + t0) * width);
    t0 += t;
  }
  return out;
}

describe.each(exampleFiles)('generated CUDA of %s on the CPU: prefill = decode = any split', (spec) => {
  it('one call, one token per call, and calls of 3 + 6 + 2 tokens agree within 1e-5', async () => {
    const c = compileExample(spec, 'auto', { D: 32, K: 8 });
    const T = 11;
    const named = randomInputs(c.chunk, { B: 2, H: 2, T, start: 0, accum: true, seed: 5 });
    const whole = await runCpu(c, named, { arch: 'sm_90', dtype: 'f32' });
    for (const cuts of [Array.from({ length: T - 1 }, (_, i) => i + 1), [3, 9]]) {
      const { outputs, carried } = await runInCalls(c, named, cuts, T);
      expect(relativeError(joinTokens(outputs), whole.get('output')!.data), `cuts ${cuts}`).toBeLessThan(TOL);
      for (const [name, v] of whole)
        if (name !== 'output') expect(relativeError(carried.get(name)!.data, v.data), name).toBeLessThan(TOL);
    }
  });
});

describe.each(exampleFiles)('generated CUDA of %s under the sanitizers', (spec) => {
  for (const mode of ['asan', 'tsan'] as const) {
    it(`${mode === 'asan' ? 'AddressSanitizer' : 'ThreadSanitizer'}: clean, and still right`, async () => {
      const c = compileExample(spec, 'auto', { D: 32, K: 8 });
      const named = randomInputs(c.chunk, { B: 1, H: 2, T: 11, start: 3, accum: true, seed: 9 });
      const got = await runCpu(c, named, { arch: 'sm_90', dtype: 'f32' }, mode);
      expect(worstError(got, reference(c, named), `${spec} ${mode}`)).toBeLessThan(TOL);
    });
  }
});

describe('tttc run --backend cuda-cpu', () => {
  it('runs the generated CUDA for the chosen --arch and --dtype and writes F32 results', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-cuda-cpu-cli-'));
    const spec = join(repoRoot, 'examples', 'ttt_linear.ttt');
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 32, K: 8 });
    const named = randomInputs(c.chunk, { B: 1, H: 2, T: 9, start: 2, seed: 7 });
    await writeSafetensorsFile(join(dir, 'in.safetensors'), toSafeTensors(named, 'F32'));
    let out = '';
    const io = { out: (t: string) => (out += t), err: (t: string) => (out += t) };
    const args = ['-D', 'D=32', '-D', 'K=8', '--inputs', join(dir, 'in.safetensors'), '--backend', 'cuda-cpu'];
    const code = await main(['run', spec, ...args, '--arch', 'sm_80', '--out', join(dir, 'out.safetensors')], io);
    expect(code, out).toBe(0);
    expect(out).toContain('on cuda-cpu');
    const file = await readSafetensorsFile(join(dir, 'out.safetensors'));
    const want = reference(c, named);
    for (const [name, w] of want) {
      expect(file.get(name).dtype).toBe('F32');
      expect(relativeError(toFloat64(file.get(name)), w.data), name).toBeLessThan(TOL);
    }
    const bad = await main(['run', spec, ...args, '--dtype', 'f16', '--out', join(dir, 'x.safetensors')], io);
    expect(bad).not.toBe(0);
    expect(out).toContain("--dtype must be f32, bf16 or tf32x3, got 'f16'");
  });
});
