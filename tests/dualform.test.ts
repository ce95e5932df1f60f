import { describe, expect, it } from 'vitest';
import type { Compiled } from '../compiler/pipeline.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { randomInputs, sliceTokens } from './support/inputs.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

const small = { D: 8, K: 4 };
const run = (c: Compiled, named: Map<string, Tensor>) =>
  innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));

function expectClose(got: Map<string, Tensor>, want: Map<string, Tensor>, tol: number): void {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g.shape, name).toEqual(w.shape);
    expect(relativeError(g.data, w.data), name).toBeLessThan(tol);
  }
}

describe.each(exampleFiles)('%s', (spec) => {
  const dual = compileExample(spec, 'auto', small);
  const primal = compileExample(spec, 'primal', small);

  it('dual form equals primal form (f64): partial mini-batches, start positions, carried accumulators', () => {
    const cases = [
      { T: 8, start: 0, accum: false },
      { T: 11, start: 0, accum: false },
      { T: 6, start: 3, accum: true },
      { T: 1, start: 2, accum: true },
      { T: 13, start: 1, accum: true, sharedState: true },
    ];
    cases.forEach((c, i) => {
      const named = randomInputs(dual.chunk, { B: 2, H: 2, seed: 100 + i, ...c });
      expectClose(run(dual, named), run(primal, named), 1e-12);
    });
  });

  it('programs of fewer rows than the mini-batch (decode-sized) give the same results', () => {
    const named = randomInputs(dual.chunk, { B: 1, H: 2, T: 9, start: 3, accum: true, seed: 21 });
    const whole = run(dual, named);
    for (const rows of [1, 3]) expectClose(run(compileExample(spec, 'auto', small, rows), named), whole, 1e-12);
  });

  it('processing T tokens at once equals any split (prefill, then one-token decode)', () => {
    const T = 10;
    const named = randomInputs(dual.chunk, { B: 2, H: 1, T, start: 1, accum: true, seed: 7 });
    const whole = run(dual, named);
    for (const splits of [[3, 4, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9], [5]]) {
      const bounds = [0, ...splits, T];
      const outputs: Tensor[] = [];
      let carried = new Map(named);
      let start = 1;
      for (let i = 0; i + 1 < bounds.length; i++) {
        const piece = sliceTokens(dual.chunk, carried, bounds[i], bounds[i + 1]);
        piece.set('start', { shape: [], data: Float64Array.of(start) });
        const out = run(dual, piece);
        outputs.push(out.get('output')!);
        carried = new Map(carried);
        for (const [name, t] of out) if (name !== 'output') carried.set(name, t);
        start = (start + bounds[i + 1] - bounds[i]) % dual.chunk.K;
      }
      const joined = joinTokens(outputs);
      expect(relativeError(joined.data, whole.get('output')!.data), `splits ${splits}`).toBeLessThan(1e-12);
      for (const [name, t] of whole)
        if (name !== 'output') expect(relativeError(carried.get(name)!.data, t.data), name).toBeLessThan(1e-12);
    }
  });
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
