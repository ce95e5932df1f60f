/**
 * Update rules in the fused kernels: every example in examples/rules/ and random rule combinations
 * (per-state per-token rates, per-token or constant decay and momentum with carried optimizer
 * states, read orders, commits, Newton–Schulz) on WebGPU (SwiftShader) and through the CUDA CPU
 * runtime, against the f64 reference within 1e-5 (relative): prefill over partial mini-batches
 * from a nonzero start with carried accumulators and optimizer states, and one-token decode.
 * Outputs are poisoned (NaN) before each kernel runs. `read: after` (update, then apply) runs on
 * cuda-cpu from start 0 (where its calls start) against the reference and against the literal
 * per-token recurrence of tests/support/recurrence.ts; it has no one-token decode variant, and
 * chunks of fewer rows than the mini-batch are refused with TTT601.
 * The examples build with nvcc for sm_80 and sm_90 without a warning.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { webgpuInnerLoop } from '../cli/link.ts';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { type Compiled, compileSpec, variantOf } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { kernelRuleRefusal } from '../compiler/schedule/rule-support.ts';
import { identifier, runKey } from '../core/mangle.ts';
import { allPorts } from '../core/signature.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { randomInputs, sliceTokens } from './support/inputs.ts';
import { runRecurrence } from './support/recurrence.ts';
import { randomRuleSpec } from './support/rule-spec.ts';
import { repoRoot } from './support/specs.ts';

const TOL = 1e-5;
/** How far above the f32-rounded program a kernel may be where that program itself misses TOL. */
const F32_FLOOR_FACTOR = 4;
const rulesDir = join(repoRoot, 'examples/rules');

function compile(text: string, file: string, overrides: Record<string, number>): Compiled {
  const declared = Object.entries(overrides).filter(([n]) => new RegExp(`(dim|minibatch)\\s+${n}\\b`).test(text));
  const result = compileSpec(text, { file, overrides: new Map(declared) });
  if (!result.ok) throw new Error(formatDiagnostics(result.diagnostics, text));
  return result.compiled;
}

/** Random inputs with a quarter of the usual rates, as tests/update-rules.test.ts (momentum near 1 diverges otherwise). */
function inputs(c: Compiled, o: Parameters<typeof randomInputs>[1]): Map<string, Tensor> {
  const named = randomInputs(c.chunk, o);
  for (const [name, t] of named)
    if (name === 'lr' || name.startsWith('lr.')) named.set(name, { shape: t.shape, data: t.data.map((x) => x / 4) });
  return named;
}

const reference = (c: Compiled, named: Map<string, Tensor>, precision: 'f64' | 'f32' = 'f64') =>
  innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named), undefined, precision));

/**
 * Each tensor within 1e-5 (relative) of the f64 reference, or, where the kernel is further off,
 * within four times the error of the chunk program itself evaluated with every value rounded to
 * f32 (the floor of any f32 kernel, which sums in another order): LaCT's five Newton–Schulz steps
 * on a small update amplify f32 rounding to 1e-5 and beyond. Every such case is logged.
 */
function expectClose(
  got: Map<string, Tensor>,
  want: Map<string, Tensor>,
  floor: () => Map<string, Tensor>,
  what: string,
): void {
  expect([...got.keys()].sort(), what).toEqual([...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g.shape, `${what}: ${name}`).toEqual(w.shape);
    const e = relativeError(g.data, w.data);
    expect(Number.isNaN(e), `${what}: ${name} has NaN`).toBe(false);
    if (e < TOL) continue;
    const f32 = relativeError(floor().get(name)!.data, w.data);
    console.log(`${what}: ${name}: ${e.toExponential(2)} against f64, the program in f32 ${f32.toExponential(2)}`);
    expect(e, `${what}: ${name} against four times the f32 floor`).toBeLessThan(F32_FLOOR_FACTOR * f32);
  }
}

type Backend = (c: Compiled, named: Map<string, Tensor>) => Promise<Map<string, Tensor>>;

/** WebGPU, with the kernels' subgroup variants where the adapter has subgroups (or, `portable`, without). */
const onWebgpu =
  (portable: boolean): Backend =>
  async (c, named) => {
    const ctx = await getGPUDevice();
    const loop = await webgpuInnerLoop(c, portable ? { ...ctx, subgroupWidth: 0 } : ctx);
    expect(loop.warnings).toEqual([]);
    return innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named), { poison: true }));
  };
const webgpu = onWebgpu(false);

/** The CUDA CPU runtime poisons every tensor the kernel writes before it runs. */
const cudaCpu: Backend = async (c, named) => {
  const loop = await CudaCpuInnerLoop.create(cudaCpuProgram(c, { arch: 'sm_90', dtype: 'f32' }));
  return innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named)));
};

/** Prefill over partial mini-batches from a nonzero start with carried state, then one-token decode. */
async function checkKernels(c: Compiled, backend: Backend, seed: number): Promise<void> {
  const named = inputs(c, { B: 2, H: 2, T: 13, start: 1, accum: true, seed });
  const once = <T>(f: () => T) => {
    let v: T | undefined;
    return () => (v ??= f());
  };
  expectClose(
    await backend(c, named),
    reference(c, named),
    once(() => reference(c, named, 'f32')),
    'prefill',
  );
  const one = sliceTokens(c.chunk, named, 0, 1);
  expectClose(
    await backend(c, one),
    reference(c, one),
    once(() => reference(c, one, 'f32')),
    'decode',
  );
}

const examples = readdirSync(rulesDir)
  .filter((f) => f.endsWith('.ttt'))
  .sort()
  .map((name) => {
    const file = join(rulesDir, name);
    return { name, c: compile(readFileSync(file, 'utf8'), file, { D: 4, H: 6, K: 4 }) };
  });
const rendered = examples.filter((e) => e.c.layer.update.rules.read !== 'after');

describe.each(rendered.map((e) => [e.name, e.c] as const))('examples/rules/%s in the kernels', (_, c) => {
  it('WebGPU matches the f64 reference (1e-5)', () => checkKernels(c, webgpu, 41));
  it('cuda-cpu matches the f64 reference (1e-5)', () => checkKernels(c, cudaCpu, 43));
});

describe('random rule combinations in the kernels', () => {
  for (let seed = 1; seed <= 12; seed++) {
    const c = compile(randomRuleSpec(seed), `random${seed}.ttt`, {});
    if (c.layer.update.rules.read === 'after') continue;
    const portable = seed % 2 === 0;
    it(`rule ${seed} on WebGPU${portable ? ' (portable code)' : ''} and cuda-cpu`, async () => {
      await checkKernels(c, onWebgpu(portable), 500 + seed);
      await checkKernels(c, cudaCpu, 600 + seed);
    });
  }
});

/**
 * `read: after` in whole-mini-batch chunks on cuda-cpu: a few random rules (token decay and momentum
 * with commits; orthogonalisation) and the non-causal example, with a partial trailing mini-batch
 * and carried accumulators, against the reference and the literal recurrence.
 */
describe('read: after in the kernels (cuda-cpu)', () => {
  const cases = [
    ...[3, 11, 23].map((seed) => ({ name: `rule ${seed}`, c: compile(randomRuleSpec(seed), `random${seed}.ttt`, {}) })),
    ...examples.filter((e) => e.c.layer.update.rules.read === 'after'),
  ];
  it.each(cases.map((e) => [e.name, e.c] as const))(
    '%s matches the reference and the recurrence (1e-5)',
    async (_, c) => {
      expect(c.layer.update.rules.read).toBe('after');
      expect(variantOf(c, 'decode')).toBeUndefined();
      const named = inputs(c, { B: 2, H: 2, T: 11, start: 0, accum: true, seed: 71 });
      const got = await cudaCpu(c, named);
      const recurrence = runRecurrence(c.layer, named);
      expectClose(got, reference(c, named), () => reference(c, named, 'f32'), 'read: after');
      for (const [name, want] of recurrence) {
        const e = relativeError(got.get(name)!.data, want.data);
        expect(e, `against the recurrence: ${name}`).toBeLessThan(TOL);
      }
    },
  );
});

/**
 * LaCT at its own chunk, K = 2048 (small D), through cuda-cpu: a full mini-batch and a partial one
 * from a carried accumulator, against the f64 reference. Its fast weights read `before`, so the
 * chunk holds [K, D] and [K, H] buffers, no K×K matrix, and most of them go to global scratch.
 */
describe('LaCT at K = 2048 in the kernels (cuda-cpu)', () => {
  it('matches the f64 reference (1e-5)', async () => {
    const file = join(rulesDir, 'lact_swiglu.ttt');
    const c = compile(readFileSync(file, 'utf8'), file, { D: 8, H: 8, K: 2048 });
    expect(c.chunk.K).toBe(2048);
    const named = inputs(c, { B: 1, H: 1, T: 2048 + 37, accum: true, seed: 9 });
    expectClose(await cudaCpu(c, named), reference(c, named), () => reference(c, named, 'f32'), 'LaCT K = 2048');
  }, 120_000);
});

/**
 * The same on WebGPU, whose smaller workgroup memory sends most buffers to scratch and whose
 * on-chip buffers may be swizzled: buffers shared in place must keep one indexing.
 */
describe('LaCT at K = 2048 in the kernels (WebGPU)', () => {
  it('matches the f64 reference (1e-5)', async () => {
    const file = join(rulesDir, 'lact_swiglu.ttt');
    const c = compile(readFileSync(file, 'utf8'), file, { D: 8, H: 8, K: 2048 });
    const named = inputs(c, { B: 1, H: 1, T: 2048 + 37, accum: true, seed: 9 });
    expectClose(await webgpu(c, named), reference(c, named), () => reference(c, named, 'f32'), 'LaCT K = 2048');
  }, 120_000);
});

describe('nvcc builds the rule examples (at the sizes above: their own sizes take minutes)', () => {
  const run = promisify(execFile);
  for (const name of readdirSync(rulesDir).filter((f) => f.endsWith('.ttt'))) {
    const file = join(rulesDir, name);
    const c = compile(readFileSync(file, 'utf8'), file, { D: 4, H: 6, K: 4 });
    it.each(['sm_80', 'sm_90'] as const)(
      `${name} for %s`,
      async (arch) => {
        const dir = mkdtempSync(join(tmpdir(), 'tttc-kernel-rules-'));
        try {
          const cuda = renderCuda(c, { arch, dtype: 'f32' });
          mkdirSync(dir, { recursive: true });
          for (const f of cuda.files) writeFileSync(join(dir, f.path), f.contents);
          const gencode = `-gencode=arch=compute_${arch.slice(3)},code=${arch}`;
          const flags = ['-Werror', 'all-warnings', '-Xcompiler', '-Wall,-Wextra,-Werror'];
          const { stdout, stderr } = await run('nvcc', ['-c', '-O3', gencode, ...flags, '-o', 'k.o', cuda.api.source], {
            cwd: dir,
          });
          expect(stdout + stderr).not.toMatch(/warning/i);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
      300_000,
    );
  }
});

describe('the kernel signature of a rule', () => {
  it("gives a rule's per-token inputs and optimizer states ports, spelt without dots and apart", () => {
    for (const { c } of examples) {
      const ports = allPorts(c.signature);
      const ids = ports.map(identifier);
      for (const id of ids) expect(id).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      expect(new Set(ids).size).toBe(ids.length);
      const keys = c.signature.inputs.map((p) => runKey(p));
      expect(new Set(keys).size).toBe(keys.length);
      for (const n of c.signature.rule?.tokenInputs ?? []) expect(keys).toContain(n);
      for (const s of c.signature.rule?.optimizerStates ?? [])
        expect(c.signature.outputs.some((p) => p.role === 'opt' && p.name === s)).toBe(true);
    }
  });

  it('read: after renders in whole-mini-batch chunks and is refused with TTT601 in fewer rows', () => {
    const after = examples.filter((e) => e.c.layer.update.rules.read === 'after');
    expect(after.length).toBeGreaterThan(0);
    for (const { c } of after) {
      expect(kernelRuleRefusal(c.chunk, 'wgsl')).toBeUndefined();
      const half = compileSpec(c.text, {
        file: c.file,
        overrides: new Map([
          ['D', 4],
          ['H', 6],
          ['K', 4],
        ]),
        rows: 2,
      });
      if (!half.ok) throw new Error(formatDiagnostics(half.diagnostics, c.text));
      const refusal = kernelRuleRefusal(half.compiled.chunk, 'wgsl');
      expect(refusal?.code).toBe('TTT601');
      expect(refusal?.message).toContain('read: after in chunks of 2 rows (the mini-batch has 4)');
    }
  });
});
