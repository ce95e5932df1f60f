import { webgpuInnerLoop } from '../cli/link.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError, type Tensor } from '../core/tensor.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { WebGPUInnerLoop } from '../runtime/webgpu/inner-loop.ts';
import { wgslManifest } from '../targets/wgsl/render.ts';
import { randomInputs, sliceTokens } from './support/inputs.ts';
import { loadReference, REFERENCE_FILES } from './support/reference-vectors.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

/** The f32 kernel's tolerance against the f64 reference (relative error). */
const TOL = 1e-5;

/**
 * The kernel's outputs; `portable` runs its portable code even where the adapter has subgroups
 * (the default is the subgroup variant wherever there is one: tests/subgroups.test.ts).
 */
async function runWgsl(c: Compiled, named: Map<string, Tensor>, portable = false) {
  const ctx = await getGPUDevice();
  const loop = await webgpuInnerLoop(c, portable ? { ...ctx, subgroupWidth: 0 } : ctx);
  expect(loop.warnings, 'Dawn compilation messages').toEqual([]);
  if (portable) expect(loop.subgroupWidth).toBe(0);
  else if (ctx.subgroupWidth && loop.manifest.subgroup) expect(loop.subgroupWidth).toBe(ctx.subgroupWidth);
  return innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named), { poison: true }));
}

function expectMatches(got: Map<string, Tensor>, want: Map<string, Tensor>, label: string): void {
  for (const [name, w] of want) {
    const g = got.get(name);
    expect(g, `${label}: ${name}`).toBeDefined();
    expect(g!.shape, `${label}: ${name}`).toEqual(w.shape);
    expect(relativeError(g!.data, w.data), `${label}: ${name}`).toBeLessThan(TOL);
  }
}

let adapter = '';
beforeAll(async () => {
  adapter = (await getGPUDevice()).adapterName;
});
afterAll(() => console.log(`WGSL kernels ran on: ${adapter}`));

/**
 * Three sizes that together cover each D in {32, 64, 128} and each K in {8, 16, 32}. Each example
 * runs two of them, a different two per example, so every size runs on most examples: each
 * distinct kernel costs SwiftShader seconds of pipeline compilation, almost all of a test's time.
 * The first runs the portable code, the second the subgroup variant (where the adapter has subgroups).
 */
const SIZES = [
  { D: 32, K: 8, B: 2, H: 3, T: 21, start: 0, accum: false },
  { D: 64, K: 16, B: 1, H: 2, T: 37, start: 5, accum: true },
  { D: 128, K: 32, B: 2, H: 1, T: 40, start: 31, accum: true },
];
const sizesOf = (example: number) => SIZES.filter((_, i) => i !== example % SIZES.length);

describe.each(exampleFiles.map((spec, i) => [spec, i] as const))(
  'WGSL kernel of %s against the f64 reference',
  (spec, i) => {
    sizesOf(i).forEach((s, j) => {
      const portable = j === 0;
      it(`D=${s.D} K=${s.K} B=${s.B} H=${s.H} T=${s.T} start=${s.start}${s.accum ? ' with a carried accumulator' : ''}${portable ? ', portable code' : ''}`, async () => {
        const c = compileExample(spec, 'auto', { D: s.D, K: s.K });
        const named = randomInputs(c.chunk, { ...s, seed: s.D + s.K });
        const want = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
        expectMatches(await runWgsl(c, named, portable), want, spec);
      });
    });
  },
);

describe('WGSL kernels on the published reference vectors', () => {
  for (const file of REFERENCE_FILES) {
    it(file, async () => {
      const ref = await loadReference(file);
      const spec = ref.kind === 'linear' ? 'ttt_linear.ttt' : 'ttt_mlp.ttt';
      const c = compileExample(spec, 'auto', {
        D: Number(ref.metadata.head_dim),
        K: Number(ref.metadata.mini_batch_size),
      });
      expectMatches(await runWgsl(c, ref.inputs), ref.expected, file);
    });
  }
});

describe('WGSL prefill equals token-by-token decode', () => {
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt']) {
    it(spec, async () => {
      const c = compileExample(spec, 'auto', { D: 32, K: 8 });
      const T = 11;
      const named = randomInputs(c.chunk, { B: 2, H: 2, T, start: 0, seed: 5 });
      const loop = await webgpuInnerLoop(c);
      const whole = innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named), { poison: true }));
      let carried = new Map(named);
      const width = 32;
      const outputs: Float64Array[] = [];
      for (let t = 0; t < T; t++) {
        const one = sliceTokens(c.chunk, carried, t, t + 1);
        one.set('start', { shape: [], data: Float64Array.of(t % c.chunk.K) });
        const out = innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, one), { poison: true }));
        outputs.push(out.get('output')!.data);
        carried = new Map(carried);
        for (const [name, v] of out) if (name !== 'output') carried.set(name, v);
      }
      // Decode outputs are [B, H, 1, D] per step; gather them as [B, H, T, D].
      const BH = 4;
      const joined = new Float64Array(BH * T * width);
      outputs.forEach((o, t) => {
        for (let bh = 0; bh < BH; bh++) joined.set(o.subarray(bh * width, (bh + 1) * width), (bh * T + t) * width);
      });
      expect(loop.warnings, 'Dawn compilation messages of the prefill and the one-row kernel').toEqual([]);
      expect(relativeError(joined, whole.get('output')!.data)).toBeLessThan(TOL);
      for (const [name, v] of whole)
        if (name !== 'output') expect(relativeError(carried.get(name)!.data, v.data), name).toBeLessThan(TOL);
    });
  }
});

describe('WGSL kernels of fewer rows than the mini-batch (decode-sized)', () => {
  for (const rows of [1, 5]) {
    it(`ttt_mlp.ttt with ${rows}-row chunks`, async () => {
      const c = compileExample('ttt_mlp.ttt', 'auto', { D: 32, K: 8 }, rows);
      const named = randomInputs(c.chunk, { B: 2, H: 1, T: 11, start: 6, accum: true, seed: 4 });
      const want = innerLoopOutputTensors(
        runReference(compileExample('ttt_mlp.ttt', 'auto', { D: 32, K: 8 }).chunk, innerLoopInputs(c.signature, named)),
      );
      expectMatches(await runWgsl(c, named), want, `${rows} rows`);
    });
  }
});

describe('WGSL dispatch beyond 65,535 workgroups', () => {
  it('257 × 256 sequence-heads (a 2-D grid of workgroups), each written', async () => {
    // A kernel scheduled for 4 invocations per workgroup keeps SwiftShader fast at this count.
    const c = compileExample('delta_rule.ttt', 'auto', { D: 2, K: 2 });
    const named = randomInputs(c.chunk, { B: 257, H: 256, T: 1, seed: 1 });
    const inputs = innerLoopInputs(c.signature, named);
    const loop = await WebGPUInnerLoop.fromManifest(wgslManifest(c, { workgroupBytes: 16384, invocations: 4 }));
    const got = innerLoopOutputTensors(await loop.run(inputs, { poison: true }));
    expectMatches(got, innerLoopOutputTensors(runReference(c.chunk, inputs)), 'B·H = 65792');
  });
});
