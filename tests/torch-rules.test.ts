/**
 * The generated PyTorch binding of specs with update rules on CPU tensors: tests/torch/
 * rules_binding.py runs the module `tttc compile --target cuda` writes (the .cu built as host C++,
 * as in tests/torch-cpu.test.ts) over a sequence in pieces, carrying states, accumulators and
 * optimizer states from one call to the next, and compares every piece with the f64 reference
 * (which tests/update-rules.test.ts holds to the literal per-token recurrence) within 1e-5, or the
 * f32 floor where Newton–Schulz amplifies rounding (expectClose). Module folders are shared with
 * the other torch tests (support/torch-module.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { stem } from '../targets/target.ts';
import { randomInputs, sliceTokens } from './support/inputs.ts';
import { compileExample } from './support/specs.ts';
import { runTorchPython, torchModuleDir } from './support/torch-module.ts';

const json = (t: Tensor) => ({ shape: t.shape, data: [...t.data] });
const byName = (m: ReadonlyMap<string, Tensor>) => Object.fromEntries([...m].map(([n, t]) => [n, json(t)]));

/** Token pieces of one 13-token sequence: a partial mini-batch, then a start in the middle of one. */
const PIECES = [
  [0, 6],
  [6, 13],
];

/** Runs `spec`'s binding over the pieces, each call after the first continuing from the binding's own outputs. */
async function runBinding(
  spec: string,
  start: number,
): Promise<{
  errors: Record<string, number | null>[];
  floors: Map<string, number>[];
  messages: Record<string, string | null>;
}> {
  const c = compileExample(spec, 'auto', { D: 8, K: 4 });
  const dir = await torchModuleDir(c);

  // Nonzero start, accumulators and optimizer states (randomInputs gives `opt.S` with `accum`).
  const named = randomInputs(c.chunk, { B: 2, H: 2, T: 13, start, accum: true, seed: 31 });
  const calls: { inputs: Record<string, unknown>; expected: Record<string, unknown> }[] = [];
  const floors: Map<string, number>[] = [];
  let carried = new Map(named);
  let at = start;
  for (const [from, to] of PIECES) {
    const piece = sliceTokens(c.chunk, carried, from, to);
    piece.set('start', { shape: [], data: Float64Array.of(at) });
    const inputs = innerLoopInputs(c.signature, piece);
    const expected = innerLoopOutputTensors(runReference(c.chunk, inputs));
    const f32 = innerLoopOutputTensors(runReference(c.chunk, inputs, undefined, 'f32'));
    floors.push(new Map([...expected].map(([n, t]) => [n, relativeError(f32.get(n)!.data, t.data)])));
    calls.push({
      inputs: {
        views: byName(inputs.views),
        ...(inputs.lr ? { lr: json(inputs.lr) } : {}),
        tokens: byName(inputs.tokens ?? new Map()),
        params: byName(inputs.params),
        states: byName(inputs.states),
        accums: byName(inputs.accums),
        opts: byName(inputs.opts ?? new Map()),
        start: inputs.start,
      },
      expected: byName(expected),
    });
    carried = new Map(carried);
    for (const [name, t] of expected) if (name !== 'output') carried.set(name, t);
    at = (at + to - from) % c.chunk.K;
  }
  const casePath = join(dir, 'rules-case.json');
  writeFileSync(casePath, JSON.stringify({ calls }));
  const stdout = runTorchPython('tests/torch/rules_binding.py', dir, stem(c), casePath);
  const result = JSON.parse(stdout);
  result.errors.forEach((e: Record<string, number | null>, i: number) =>
    expect(Object.keys(e).sort(), `call ${i}`).toEqual(Object.keys(calls[i].expected).sort()),
  );
  return { ...result, floors };
}

const TOL = 1e-5;
/** How far above the f32-rounded program the binding may be where that program itself misses TOL. */
const F32_FLOOR_FACTOR = 4;

/**
 * Each error within 1e-5 (relative) of the f64 reference or, where the binding is further off,
 * within four times the error of the chunk program evaluated with every value rounded to f32 (the
 * rule tests/kernel-rules.test.ts holds the kernels to: LaCT's Newton–Schulz steps amplify f32
 * rounding to 1e-5 and beyond). Every such case is logged.
 */
function expectClose(label: string, errors: Record<string, number | null>[], floors: Map<string, number>[]): void {
  errors.forEach((e, i) => {
    console.log(
      `${label} call ${i}: ${Object.entries(e)
        .map(([n, x]) => `${n} ${x?.toExponential(2)}`)
        .join(', ')}`,
    );
    for (const [name, err] of Object.entries(e)) {
      expect(err ?? Number.NaN, `call ${i}: ${name}`).not.toBeNaN();
      if (err! < TOL) continue;
      const floor = floors[i].get(name)!;
      console.log(
        `${label} call ${i}: ${name}: ${err!.toExponential(2)}, the program in f32 ${floor.toExponential(2)}`,
      );
      expect(err, `call ${i}: ${name} against four times the f32 floor`).toBeLessThan(F32_FLOOR_FACTOR * floor);
    }
  });
}

// A first run builds the extension (host C++ of the whole kernel): minutes on a loaded 2-core machine.
describe('the generated PyTorch binding of update rules on CPU tensors', { timeout: 300_000 }, () => {
  it('Titans memory (decay, momentum, opt.S): two calls continuing each other match the f64 reference within 1e-5', async () => {
    const { errors, floors, messages } = await runBinding('rules/titans_mlp_memory.ttt', 1);
    expectClose('titans_mlp_memory', errors, floors);
    expect(Object.keys(errors[0])).toEqual(expect.arrayContaining(['opt.W1', 'opt.W2']));
    expect(messages['missing token']).toMatch(
      /^ValueError: tokens must have exactly the names \['decay', 'momentum'\]: missing \['decay'\]/,
    );
    expect(messages['short token']).toMatch(
      /^ValueError: tokens\['decay'\] has shape \(2, 2, 5\), expected \(2, 2, 6\)/,
    );
    expect(messages['f64 token']).toMatch(
      /^TypeError: tokens\['decay'\] has dtype torch.float64, expected torch.float32/,
    );
    expect(messages['unknown opt']).toMatch(
      /^ValueError: opts must have exactly the names .*unexpected \['nonesuch'\]/,
    );
    expect(messages['short opt']).toMatch(
      /^ValueError: opts\['W1'\] has shape \(2, 2, 8, 31\), expected \(2, 2, 8, 32\)/,
    );
  });

  it('LaCT (a rate per state, read before, Muon, renormalising commits): two calls match the f64 reference within 1e-5 or the f32 floor', async () => {
    const { errors, floors, messages } = await runBinding('rules/lact_swiglu.ttt', 0);
    expectClose('lact_swiglu', errors, floors);
    expect(messages['missing token']).toMatch(
      /^ValueError: tokens must have exactly the names \['lr.W1', 'lr.W3', 'lr.W2'\]: missing \['lr.W1'\]/,
    );
    expect(messages['f64 token']).toMatch(/^TypeError: tokens\['lr.W1'\] has dtype torch.float64/);
  });
});
