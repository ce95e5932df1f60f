/**
 * WGSL subgroup variants (targets/wgsl/entry.ts): the kernels with their row sums split across
 * subgroup lanes. The lanes path changes the order of a row's additions, so on the adapter's
 * subgroups its results differ from the portable code's in the last bits and agree with the f64
 * reference; a width the adapter's subgroups cannot serve is caught by the kernel's own check,
 * which then sums each row in one lane, in the portable code's order: bitwise its result.
 */
import { describe, expect, it } from 'vitest';
import { webgpuInnerLoop, webgpuInnerLoopBackward } from '../cli/link.ts';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { type GPUContext, getGPUDevice, subgroupWidthOf } from '../runtime/webgpu/device.ts';
import { renderWgsl } from '../targets/wgsl/render.ts';
import { renderWgslBackward } from '../targets/wgsl/backward.ts';
import { randomInputs } from './support/inputs.ts';
import { normals, rng } from './support/random.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

const TOL = 1e-5;

const context = (subgroupWidth: number): Promise<GPUContext> =>
  getGPUDevice().then((ctx) => ({ ...ctx, subgroupWidth }));

async function outputs(c: Compiled, named: Map<string, Tensor>, subgroupWidth: number) {
  const loop = await webgpuInnerLoop(c, await context(subgroupWidth));
  expect(loop.warnings, 'Dawn compilation messages').toEqual([]);
  expect(loop.subgroupWidth).toBe(subgroupWidth);
  return innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named), { poison: true }));
}

const bitwiseEqual = (a: Map<string, Tensor>, b: Map<string, Tensor>) =>
  [...a].every(([n, t]) => t.data.every((x, i) => Object.is(x, b.get(n)!.data[i])));

describe('subgroup variants', () => {
  it("take the largest power of two within the adapter's smallest subgroup and 32", () => {
    const adapter = (features: string[], subgroupMinSize?: number) =>
      ({ features: new Set(features), info: { subgroupMinSize } }) as unknown as GPUAdapter;
    expect(subgroupWidthOf(adapter(['subgroups'], 4))).toBe(4);
    expect(subgroupWidthOf(adapter(['subgroups'], 12))).toBe(8);
    expect(subgroupWidthOf(adapter(['subgroups'], 64))).toBe(32);
    expect(subgroupWidthOf(adapter([], 32))).toBe(0);
    expect(subgroupWidthOf(adapter(['subgroups']))).toBe(0);
  });

  it('are printed beside the portable code, which uses no subgroups; the paper layers have them forward and backward', () => {
    for (const spec of exampleFiles) {
      const c = compileExample(spec);
      for (const [label, k] of [
        ['forward', renderWgsl(c)],
        ['backward', renderWgslBackward(c)],
      ] as const) {
        expect(k.code, `${spec} ${label} portable`).not.toContain('subgroup');
        if (['ttt_linear.ttt', 'ttt_mlp.ttt'].includes(spec)) expect(k.subgroup, `${spec} ${label}`).toBeDefined();
        if (!k.subgroup) continue;
        expect(k.subgroup.code, `${spec} ${label}`).toMatch(/^enable subgroups;$/m);
        expect(k.subgroup.code, `${spec} ${label}`).toContain('subgroupShuffleXor(acc, 1u)');
      }
    }
  });

  describe.each(['ttt_linear.ttt', 'ttt_mlp.ttt'])('%s', (spec) => {
    const c = compileExample(spec, 'auto', { D: 16, K: 8 });
    const named = randomInputs(c.chunk, { B: 2, H: 2, T: 21, start: 3, accum: true, seed: 9 });
    const want = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));

    it("on the adapter's subgroups: the f64 reference's result, by another order of additions than the portable code's; at a width the subgroups cannot serve, the portable result bitwise", async () => {
      const adapterWidth = (await getGPUDevice()).subgroupWidth;
      if (!adapterWidth) {
        console.log('The adapter has no subgroups: only the portable code runs.');
        return;
      }
      const portable = await outputs(c, named, 0);
      const lanes = await outputs(c, named, adapterWidth);
      const unserved = await outputs(c, named, Math.min(64, adapterWidth * 2));
      for (const [name, w] of want) {
        expect(relativeError(portable.get(name)!.data, w.data), `portable ${name}`).toBeLessThan(TOL);
        expect(relativeError(lanes.get(name)!.data, w.data), `subgroups ${name}`).toBeLessThan(TOL);
      }
      expect(bitwiseEqual(lanes, portable), 'the lanes path ran').toBe(false);
      expect(bitwiseEqual(unserved, portable), 'the check fell back to one lane per row').toBe(true);
    });
  });

  it('the portable backward of ttt_mlp.ttt matches the f64 reference backward (the default runs the subgroup one)', async () => {
    const c = compileExample('ttt_mlp.ttt', 'auto', { D: 8, K: 4 });
    const named = randomInputs(c.chunk, { B: 2, H: 2, T: 13, start: 2, accum: true, seed: 11 });
    const r = rng(12);
    const inputs = innerLoopInputs(c.signature, named);
    const checkpoints: Checkpoints = [];
    const reference = runReference(c.chunk, inputs, checkpoints);
    const ct = new Map(
      [...innerLoopOutputTensors(reference)].map(([n, t]) => [n, { shape: t.shape, data: normals(r, t.data.length) }]),
    );
    const cotangents = innerLoopCotangents(c.signature, inputs, ct);
    const want = gradientTensors(
      runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents),
      named,
    );
    const loop = await webgpuInnerLoopBackward(c, await context(0));
    expect(loop.subgroupWidths).toEqual({ forward: 0, backward: 0 });
    const got = gradientTensors((await loop.run(inputs, cotangents, { poison: true })).grads, named);
    for (const [name, w] of want) expect(relativeError(got.get(name)!.data, w.data), name).toBeLessThan(1e-4);
  });
});
