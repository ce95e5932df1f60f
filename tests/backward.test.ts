import { describe, expect, it } from 'vitest';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import type { FormRequest } from '../compiler/dualform/forms.ts';
import { type Compiled, compileSpec } from '../compiler/pipeline.ts';
import { size } from '../core/shape.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { outputPort, statePorts } from '../core/signature.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import { type InputOptions, randomInputs } from './support/inputs.ts';
import { primalSequenceGradients } from './support/primal-sequence.ts';
import { normals, rng } from './support/random.ts';
import { compileExample, exampleFiles } from './support/specs.ts';
import { UNUSUAL_SPECS } from './specs/unusual.ts';
import { randomSpec } from './support/random-spec.ts';

const small = { D: 4, K: 4 };

function compileText(text: string, form: FormRequest): Compiled {
  const r = compileSpec(text, { file: 'unusual.ttt', form });
  if (!r.ok) throw new Error(formatDiagnostics(r.diagnostics, text));
  return r.compiled;
}

/** Random cotangents of every output of a call; `carried: false` gives only `output`. */
function randomCotangents(
  c: Compiled,
  named: Map<string, Tensor>,
  carried: boolean,
  seed: number,
): Map<string, Tensor> {
  const r = rng(seed);
  const outs = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
  const ct = new Map<string, Tensor>();
  for (const [n, t] of outs)
    if (n === 'output' || carried) ct.set(n, { shape: t.shape, data: normals(r, t.data.length) });
  return ct;
}

/** The derived backward on the reference backend: the call's outputs and `grad.NAME` tensors. */
function derivedGradients(c: Compiled, named: Map<string, Tensor>, ct: Map<string, Tensor>): Map<string, Tensor> {
  const sig = c.signature;
  const inputs = innerLoopInputs(sig, named);
  const checkpoints: Checkpoints = [];
  runReference(c.chunk, inputs, checkpoints);
  const grads = runReferenceBackward(
    deriveChunkBackward(c.chunk),
    inputs,
    checkpoints,
    innerLoopCotangents(sig, inputs, ct),
  );
  return gradientTensors(grads, named);
}

/** ⟨cotangents, outputs⟩ of the forward: the scalar whose gradient the backward gives. */
function pairing(c: Compiled, named: Map<string, Tensor>, ct: Map<string, Tensor>): number {
  const outs = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
  let s = 0;
  for (const [n, t] of ct) {
    const o = outs.get(n)!.data;
    for (let i = 0; i < o.length; i++) s += o[i] * t.data[i];
  }
  return s;
}

/** The directional derivative along `dir` of tensor `name` by a five-point central difference. */
function finiteDifference(
  c: Compiled,
  named: Map<string, Tensor>,
  ct: Map<string, Tensor>,
  name: string,
  dir: Float64Array,
  h: number,
): number {
  const at = (e: number) => {
    const t = named.get(name)!;
    const moved = new Map(named);
    moved.set(name, { shape: t.shape, data: t.data.map((x, i) => x + e * dir[i]) });
    return pairing(c, moved, ct);
  };
  return (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
}

/** The primal implementation's gradients for every sequence-head, in the `grad.NAME` convention. */
function primalGradients(c: Compiled, named: Map<string, Tensor>, ct: Map<string, Tensor>): Map<string, Tensor> {
  const L = c.layer;
  const sig = c.signature;
  const inp = innerLoopInputs(sig, named);
  const cot = innerLoopCotangents(sig, inp, ct);
  const { B, H, T } = inp;
  const out = new Map<string, Tensor>();
  const zeros = (n: string) => {
    const t = named.get(n)!;
    out.set(`grad.${n}`, { shape: t.shape, data: new Float64Array(t.data.length) });
  };
  for (const n of named.keys()) if (n !== 'start') zeros(n);
  const block = (t: Tensor, bh: number, shape: readonly number[]): Tensor => ({
    shape,
    data: t.data.slice(bh * size(shape), (bh + 1) * size(shape)),
  });
  const add = (name: string, at: number, g: Float64Array) => {
    const t = out.get(name)!.data;
    for (let i = 0; i < g.length; i++) t[at + i] += g[i];
  };
  const perHead = (s: string) =>
    named.get(`state.${s}`)!.shape.length === 1 + statePorts(sig).find((x) => x.name === s)!.shape.length;
  for (let bh = 0; bh < B * H; bh++) {
    const h = bh % H;
    const g = primalSequenceGradients(L, {
      T,
      start: inp.start,
      K: c.chunk.K,
      views: new Map(L.views.map((v) => [v.name, block(inp.views.get(v.name)!, bh, [T, ...v.shape])])),
      lr: inp.lr && block(inp.lr, bh, [T]).data,
      scale: inp.scale?.data,
      params: new Map(L.params.map((p) => [p.name, block(inp.params.get(p.name)!, h, p.shape)])),
      states: new Map(L.states.map((s) => [s.name, block(inp.states.get(s.name)!, bh, s.shape)])),
      accums: new Map(L.states.map((s) => [s.name, block(inp.accums.get(s.name)!, bh, s.shape)])),
      ctOutput: block(cot.output, bh, [T, ...outputPort(sig).shape]),
      ctStates: new Map(L.states.map((s) => [s.name, block(cot.states.get(s.name)!, bh, s.shape)])),
      ctAccums: new Map(L.states.map((s) => [s.name, block(cot.accums.get(s.name)!, bh, s.shape)])),
    });
    for (const [v, d] of g.views) add(`grad.${v}`, bh * d.length, d);
    if (g.lr) add('grad.lr', bh * T, g.lr);
    if (g.scale) add('grad.scale', 0, g.scale);
    for (const [p, d] of g.params) add(`grad.param.${p}`, h * d.length, d);
    // A state given per head [H, ...] gets the sum over its sequences.
    for (const [s, d] of g.states) add(`grad.state.${s}`, (perHead(s) ? h : bh) * d.length, d);
    for (const [s, d] of g.accums) if (named.has(`accum.${s}`)) add(`grad.accum.${s}`, bh * d.length, d);
  }
  return out;
}

const CASES: (Omit<InputOptions, 'seed'> & { carried: boolean })[] = [
  // Two mini-batches, the second open (7 = 4 + 3), cotangents of the output only.
  { B: 2, H: 2, T: 7, carried: false },
  // From position 1 with a carried accumulator, ending in an open mini-batch (6 = 3 + 3 when
  // K = 4); states shared by the sequences ([H, ...]), so their gradients sum over B.
  { B: 2, H: 1, T: 6, start: 1, accum: true, sharedState: true, carried: true },
  // Ends inside the first mini-batch: the final accumulator's cotangent matters.
  { B: 1, H: 2, T: 2, start: 1, accum: true, carried: true },
];

function checkSpec(auto: Compiled, primal: Compiled): void {
  const smooth = !auto.chunk.program.nodes.some((n) => n.op.kind === 'unary' && n.op.fn === 'step');
  it.each(CASES.map((c, i) => ({ ...c, seed: 40 + i })))(
    'against the unrolled primal form, forced primal form and finite differences: %o',
    ({ carried, ...o }) => {
      const named = randomInputs(auto.chunk, o);
      const ct = randomCotangents(auto, named, carried, o.seed + 1000);
      const got = derivedGradients(auto, named, ct);
      const want = primalGradients(auto, named, ct);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [n, w] of want) {
        expect(got.get(n)!.shape, n).toEqual(named.get(n.slice('grad.'.length))!.shape);
        expect(relativeError(got.get(n)!.data, w.data), `${n} vs primal`).toBeLessThan(1e-9);
      }
      const forced = derivedGradients(primal, named, ct);
      for (const [n, w] of want)
        expect(relativeError(forced.get(n)!.data, w.data), `${n} (--form primal)`).toBeLessThan(1e-9);
      const r = rng(o.seed + 2000);
      for (const [n, g] of got) {
        const input = n.slice('grad.'.length);
        const dir = normals(r, g.data.length);
        const exact = g.data.reduce((s, x, i) => s + x * dir[i], 0);
        // Relative to the derivative along a typical direction (‖g‖ for a direction of unit RMS) when
        // this one happens to be nearly orthogonal to g, where the difference quotient's rounding
        // (ε·|pairing|/h) would otherwise dominate.
        const typical = (Math.hypot(...g.data) * Math.hypot(...dir)) / Math.sqrt(dir.length);
        const error = (h: number) =>
          Math.abs(finiteDifference(auto, named, ct, input, dir, h) - exact) / Math.max(Math.abs(exact), typical, 1e-6);
        const e = error(1e-4);
        // A `step` (relu) in the loss makes the inner gradient, and so the call, jump where a
        // pre-activation crosses 0: there a difference quotient grows as 1/h and tells nothing.
        if (!smooth && e >= 1e-7 && error(5e-5) > 1.5 * e) continue;
        expect(e, `${n} vs finite differences`).toBeLessThan(1e-7);
      }
    },
  );
}

describe.each(exampleFiles)('backward of %s', (spec) => {
  const auto = compileExample(spec, 'auto', small);
  checkSpec(auto, compileExample(spec, 'primal', small));

  it('programs of fewer rows than the mini-batch (chunks inside mini-batches) give the same gradients', () => {
    const named = randomInputs(auto.chunk, { B: 1, H: 2, T: 9, start: 3, accum: true, seed: 8 });
    const ct = randomCotangents(auto, named, true, 9);
    const whole = derivedGradients(auto, named, ct);
    for (const rows of [1, 3]) {
      const got = derivedGradients(compileExample(spec, 'auto', small, rows), named, ct);
      for (const [n, w] of whole)
        expect(relativeError(got.get(n)!.data, w.data), `${n}, ${rows} rows`).toBeLessThan(1e-12);
    }
  });
});

describe.each(Object.entries(UNUSUAL_SPECS))('backward of %s', (_, text) => {
  checkSpec(compileText(text, 'auto'), compileText(text, 'primal'));
});

describe.each([1, 2, 3, 4, 5, 6, 7, 8])('backward of random spec %i', (seed) => {
  const text = randomSpec(seed);
  checkSpec(compileText(text, 'auto'), compileText(text, 'primal'));
});
