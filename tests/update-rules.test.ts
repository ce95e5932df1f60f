import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompileError, formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { kernelRuleRefusal } from '../compiler/schedule/rule-support.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { webgpuInnerLoop } from '../cli/link.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';
import type { FormRequest } from '../compiler/dualform/forms.ts';
import { type Compiled, compileSpec, variantOf } from '../compiler/pipeline.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { randomInputs, sliceTokens } from './support/inputs.ts';
import { runRecurrence } from './support/recurrence.ts';
import { randomRuleSpec } from './support/rule-spec.ts';
import { repoRoot } from './support/specs.ts';

const rulesDir = join(repoRoot, 'examples/rules');
const ruleExamples = readdirSync(rulesDir)
  .filter((f) => f.endsWith('.ttt'))
  .sort();

function compile(
  text: string,
  file: string,
  form: FormRequest,
  overrides: Record<string, number>,
  rows?: number,
): Compiled {
  // Small sizes: each override applies where the spec declares that dim.
  const declared = Object.entries(overrides).filter(([n]) => new RegExp(`(dim|minibatch)\\s+${n}\\b`).test(text));
  const result = compileSpec(text, { file, form, overrides: new Map(declared), rows });
  if (!result.ok) throw new Error(formatDiagnostics(result.diagnostics, text));
  return result.compiled;
}

const run = (c: Compiled, named: Map<string, Tensor>) =>
  innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));

function expectClose(got: Map<string, Tensor>, want: Map<string, Tensor>, tol: number, what: string): void {
  expect([...got.keys()].sort(), what).toEqual([...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g.shape, `${what}: ${name}`).toEqual(w.shape);
    expect(relativeError(g.data, w.data), `${what}: ${name}`).toBeLessThan(tol);
  }
}

/** Calls covering partial mini-batches, nonzero starts and carried accumulators and optimizer states. */
function callCases(after: boolean) {
  return after
    ? [
        { T: 8, start: 0, accum: false },
        { T: 11, start: 0, accum: true },
      ]
    : [
        { T: 8, start: 0, accum: false },
        { T: 11, start: 0, accum: true },
        { T: 6, start: 3, accum: true },
        { T: 13, start: 1, accum: true, sharedState: true },
      ];
}

/**
 * Random inputs with rates a quarter of the usual: with momentum near 1 and an unhalved squared
 * loss, the usual rates make some layers diverge within a dozen tokens (in both implementations).
 */
function inputs(c: Compiled, o: Parameters<typeof randomInputs>[1]): Map<string, Tensor> {
  const named = randomInputs(c.chunk, o);
  for (const [name, t] of named)
    if (name === 'lr' || name.startsWith('lr.')) named.set(name, { shape: t.shape, data: t.data.map((x) => x / 4) });
  return named;
}

function checkSpec(text: string, file: string, overrides: Record<string, number>, seed: number): void {
  const dual = compile(text, file, 'auto', overrides);
  const primal = compile(text, file, 'primal', overrides);
  const after = dual.layer.update.rules.read === 'after';
  callCases(after).forEach((c, i) => {
    const named = inputs(dual, { B: 2, H: 2, seed: seed + i, ...c });
    const reference = run(dual, named);
    expectClose(reference, runRecurrence(dual.layer, named), 1e-10, `${file} recurrence ${JSON.stringify(c)}`);
    expectClose(run(primal, named), reference, 1e-12, `${file} primal ${JSON.stringify(c)}`);
  });
  // Decode and continuation: any split equals one call, and so do programs of fewer rows.
  const T = 10;
  const start = after ? 0 : 1;
  const named = inputs(dual, { B: 1, H: 2, T, start, accum: true, seed: seed + 50 });
  const whole = run(dual, named);
  const splits = after
    ? [[4], [4, 8]]
    : [
        [3, 4, 7],
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
      ];
  for (const cut of splits) {
    const bounds = [0, ...cut, T];
    const outputs: Tensor[] = [];
    let carried = new Map(named);
    let at = start;
    for (let i = 0; i + 1 < bounds.length; i++) {
      const piece = sliceTokens(dual.chunk, carried, bounds[i], bounds[i + 1]);
      piece.set('start', { shape: [], data: Float64Array.of(at) });
      const out = run(dual, piece);
      outputs.push(out.get('output')!);
      carried = new Map(carried);
      for (const [name, t] of out) if (name !== 'output') carried.set(name, t);
      at = (at + bounds[i + 1] - bounds[i]) % dual.chunk.K;
    }
    expect(relativeError(joinTokens(outputs).data, whole.get('output')!.data), `${file} split ${cut}`).toBeLessThan(
      1e-12,
    );
    for (const [name, t] of whole)
      if (name !== 'output')
        expect(relativeError(carried.get(name)!.data, t.data), `${file} split ${cut}: ${name}`).toBeLessThan(1e-12);
  }
  if (!after)
    for (const rows of [1, 3])
      expectClose(run(compile(text, file, 'auto', overrides, rows), named), whole, 1e-12, `${file} rows ${rows}`);
}

describe.each(ruleExamples)('examples/rules/%s', (name) => {
  it('reference = the per-token recurrence (1e-10); dual = primal, any split = one call (1e-12)', () => {
    const file = join(rulesDir, name);
    checkSpec(readFileSync(file, 'utf8'), file, { D: 4, H: 6, K: 4 }, 300);
  });
});

describe('random combinations of the options', () => {
  for (let seed = 1; seed <= 16; seed++) {
    it(`rule ${seed}`, () => {
      const text = randomRuleSpec(seed);
      checkSpec(text, `random${seed}.ttt`, {}, 1000 + seed * 10);
    });
  }
});

/** Concatenate [B, H, Ti, ...] tensors along the token axis. */
function joinTokens(parts: Tensor[]): Tensor {
  const [B, H, , ...rest] = parts[0].shape;
  const w = rest.reduce((a, b) => a * b, 1);
  const T = parts.reduce((a, p) => a + p.shape[2], 0);
  const data = new Float64Array(B * H * T * w);
  for (let bh = 0; bh < B * H; bh++) {
    let t0 = 0;
    for (const p of parts) {
      const Ti = p.shape[2];
      data.set(p.data.subarray(bh * Ti * w, (bh + 1) * Ti * w), (bh * T + t0) * w);
      t0 += Ti;
    }
  }
  return { shape: [B, H, T, ...rest], data };
}

describe('chunks of 2048 tokens in the reference executor', () => {
  // Gated DeltaNet reads causally through ten K×K matrices (seconds per chunk in f64): one chunk.
  for (const [name, overrides, T] of [
    ['lact_swiglu.ttt', { D: 8, H: 8, K: 2048 }, 2048 + 37],
    ['gated_deltanet.ttt', { D: 8, K: 2048 }, 2048],
  ] as const) {
    it(`${name} at K = 2048 equals the per-token recurrence (T = ${T})`, () => {
      const file = join(rulesDir, name);
      const c = compile(readFileSync(file, 'utf8'), file, 'auto', overrides);
      expect(c.chunk.K).toBe(2048);
      const named = inputs(c, { B: 1, H: 1, T, accum: true, seed: 9 });
      expectClose(run(c, named), runRecurrence(c.layer, named), 1e-10, `${name} K=2048`);
    });
  }
});

/** Rules the fused kernels render: constant decay and rates, `read: before`, commits, orthogonalisation. */
const KERNEL_RULES: Record<string, string> = {
  'constant decay, causal (a mini-batch Gated DeltaNet with a fixed gate)': `
layer ConstantDecay {
  dim D = 8
  minibatch K = 4
  state S: [D, D]
  state c: [D]
  loss(k: [D], v: [D]) = 0.5 * sum(square(l2norm(k) @ S + c - v))
  output(q: [D]) = l2norm(q) @ S + c
  update sgd(lr: token, decay: 0.9)
}`,
  'constant rates per state, apply then update, commits and Muon (LaCT at a small chunk)': `
layer SmallLaCT {
  dim D = 4
  dim H = 6
  minibatch K = 4
  state W1: [D, H]
  state W3: [D, H]
  state W2: [H, D]
  param n1: [H]
  param n2: [D]
  fn f(x: [D]) -> [D] = (silu(x @ W1) * (x @ W3)) @ W2
  loss(k: [D], v: [D]) = -dot(f(k), v)
  output(q: [D]) = f(q)
  update sgd(lr: token, read: before) {
    lr W3: 0.05
    orthogonalize W1(steps: 2)
    orthogonalize W2(steps: 1)
    commit W1 = transpose(l2norm(transpose(W1))) * n1
    commit W2 = transpose(l2norm(transpose(W2))) * n2
  }
}`,
  'update, then apply, with rates per state, a commit and Muon (a non-causal LaCT)': `
layer NonCausalLaCT {
  dim D = 4
  dim H = 6
  minibatch K = 4
  state W1: [D, H]
  state W3: [D, H]
  state W2: [H, D]
  param n1: [H]
  fn f(x: [D]) -> [D] = (silu(x @ W1) * (x @ W3)) @ W2
  loss(k: [D], v: [D]) = -dot(f(k), v)
  output(q: [D]) = f(q)
  update sgd(lr: token, read: after) {
    lr W3: token
    lr W2: 0.05
    orthogonalize W2(steps: 2)
    commit W1 = transpose(l2norm(transpose(W1))) * n1
  }
}`,
};

describe.each(Object.entries(KERNEL_RULES))('WGSL kernel of a rule it renders: %s', (_, text) => {
  it('matches the f64 reference (f32, 1e-5), prefill with a carried accumulator and decode (under read: after, the recurrence and no decode)', async () => {
    const c = compile(text, 'rule.ttt', 'auto', {});
    expect(kernelRuleRefusal(c.chunk, 'wgsl')).toBeUndefined();
    // Under read: after calls start at a mini-batch boundary and there is no one-token decode.
    const after = c.layer.update.rules.read === 'after';
    const named = inputs(c, { B: 2, H: 2, T: 13, start: after ? 0 : 3, accum: true, seed: 77 });
    const want = run(c, named);
    const loop = await webgpuInnerLoop(c);
    expect(loop.warnings).toEqual([]);
    const got = innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named), { poison: true }));
    for (const [name, w] of want) expect(relativeError(got.get(name)!.data, w.data), name).toBeLessThan(1e-5);
    if (after) {
      for (const [name, w] of runRecurrence(c.layer, named))
        expect(relativeError(got.get(name)!.data, w.data), `recurrence ${name}`).toBeLessThan(1e-5);
      expect(variantOf(c, 'decode')).toBeUndefined();
      const next = sliceTokens(c.chunk, named, 0, 1);
      next.set('start', { shape: [], data: Float64Array.of(1) });
      expect(() => innerLoopInputs(c.signature, next)).toThrow(/read order 'after'.*start 0/);
      return;
    }
    const one = sliceTokens(c.chunk, named, 0, 1);
    const decoded = innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, one), { poison: true }));
    const wantOne = run(c, one);
    for (const [name, w] of wantOne)
      expect(relativeError(decoded.get(name)!.data, w.data), `decode ${name}`).toBeLessThan(1e-5);
  });
});

describe('targets', () => {
  it('the fused-kernel targets refuse read: after in chunks of fewer rows than the mini-batch with TTT601', () => {
    const file = join(rulesDir, 'ttt_mlp_noncausal.ttt');
    const whole = compile(readFileSync(file, 'utf8'), file, 'auto', { D: 4, H: 6, K: 4 });
    expect(kernelRuleRefusal(whole.chunk, 'wgsl')).toBeUndefined();
    const c = compile(readFileSync(file, 'utf8'), file, 'auto', { D: 4, H: 6, K: 4 }, 2);
    const refusal = kernelRuleRefusal(c.chunk, 'wgsl');
    expect(refusal?.code).toBe('TTT601');
    expect(refusal?.message).toContain('wgsl');
    expect(refusal?.message).toContain('read: after in chunks of 2 rows');
    expect(() => schedule(c.chunk, WEBGPU_DEFAULT_LIMITS)).toThrow(CompileError);
  });

  it('the CUDA renderer takes the rules the WGSL kernel renders (built by nvcc in tests/cuda.test.ts style, not run here)', () => {
    for (const text of Object.values(KERNEL_RULES)) {
      const c = compile(text, 'rule.ttt', 'auto', {});
      const files = renderCuda(c, { arch: 'sm_90', dtype: 'f32' }).files;
      expect(files.length).toBeGreaterThan(0);
    }
  });

  it('plain sgd is not refused', () => {
    const file = join(repoRoot, 'examples/ttt_linear.ttt');
    const c = compile(readFileSync(file, 'utf8'), file, 'auto', { D: 4, K: 4 });
    expect(kernelRuleRefusal(c.chunk, 'cuda')).toBeUndefined();
  });
});
