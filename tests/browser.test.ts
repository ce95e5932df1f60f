// The WGSL inner loop in a real browser: headless Chromium's own WebGPU (on SwiftShader), reached
// through the runtime's navigator.gpu path, with the compiler running in the page too. Never
// skips: without Chromium or its WebGPU the tests fail, saying what to install.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import type { BrowserRunResult, PlainTensor } from './browser/entry.ts';
import { BrowserHarness } from './browser/harness.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample, repoRoot } from './support/specs.ts';

/** The f32 kernel's tolerance against the f64 reference (relative error), as in wgsl.test.ts. */
const TOL = 1e-5;
const DIMS = { D: 32, K: 8 };
const SIZES = { B: 2, H: 2, T: 11, start: 3, accum: true, seed: 7 };

const plain = (t: Tensor): PlainTensor => ({ shape: t.shape, data: Array.from(t.data) });

// Started once and awaited by each test, so that a missing Chromium fails every test with the
// reason rather than failing the hook and reporting the tests as skipped.
let harness: Promise<BrowserHarness>;
let adapter: BrowserRunResult['adapter'] | undefined;
beforeAll(() => {
  harness = BrowserHarness.start();
  harness.catch(() => {}); // reported by the tests that await it
});
afterAll(async () => {
  if (adapter) console.log(`Browser WGSL kernels ran on: ${adapter.name} (${JSON.stringify(adapter)})`);
  await harness.then(
    (h) => h.close(),
    () => {},
  );
});

describe('WGSL inner loop in headless Chromium against the f64 reference', () => {
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt']) {
    it(`${spec} at D=${DIMS.D} K=${DIMS.K} B=${SIZES.B} H=${SIZES.H} T=${SIZES.T} start=${SIZES.start} with carried accumulators`, async () => {
      const c = compileExample(spec, 'auto', DIMS);
      const named = randomInputs(c.chunk, SIZES);
      const want = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));

      const file = join(repoRoot, 'examples', spec);
      const inputs = Object.fromEntries([...named].map(([name, t]) => [name, plain(t)]));
      const browser = await harness;
      const got = await browser.run({ file, spec: readFileSync(file, 'utf8'), dims: DIMS, inputs });
      adapter = got.adapter;

      expect(got.messages, 'Chromium shader compilation messages').toEqual([]);
      expect(Object.keys(got.outputs).sort()).toEqual([...want.keys()].sort());
      for (const [name, w] of want) {
        const g = got.outputs[name];
        expect(g.shape, name).toEqual(w.shape);
        const error = relativeError(g.data, w.data);
        console.log(`${spec} ${name}: relative error ${error.toExponential(2)}`);
        expect(error, name).toBeLessThan(TOL);
      }
      expect(browser.pageErrors, 'page errors').toEqual([]);
    });
  }
});
