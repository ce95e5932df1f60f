/**
 * Homes in two slots (compiler/schedule/kernel.ts, OnChipHome `pingPong`): the scheduler keeps them
 * only where they save a block barrier without costing resident blocks or global memory, the
 * barriers see the update's writes in the other slot, and the kernels that take them still match
 * the f64 reference over several chunks, both slots read in turn.
 */
import { describe, expect, it } from 'vitest';
import type { Compiled } from '../compiler/pipeline.ts';
import { acrossWarps } from '../compiler/schedule/barriers.ts';
import type { Homes, ScheduledKernel } from '../compiler/schedule/kernel.ts';
import { globalFloats, residentWorkgroups, synchronise } from '../compiler/schedule/layout.ts';
import { homeKey, schedule } from '../compiler/schedule/schedule.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { webgpuInnerLoop } from '../cli/link.ts';
import { deviceLimits, getGPUDevice } from '../runtime/webgpu/device.ts';
import { schedulingLimits } from '../runtime/webgpu/inner-loop.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { scheduleForward } from '../targets/cuda/render.ts';
import { withTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

const ARCHS = ['sm_80', 'sm_90'] as const;
const blockBarriers = (k: ScheduledKernel) => k.barriers.filter(acrossWarps).length;
const pingPongs = (k: ScheduledKernel) =>
  [...k.states.values()].some((h) => Object.values(h).some((x) => 'pingPong' in x && x.pingPong));

/** The same kernel with every home back in one slot (same offsets), its barriers placed again. */
function singleSlots(k: ScheduledKernel, lanes: number | undefined): ScheduledKernel {
  const states = new Map(
    [...k.states].map(([name, h]) => [
      name,
      Object.fromEntries(Object.entries(h).map(([kind, x]) => [kind, { ...x, pingPong: undefined }])) as Homes,
    ]),
  );
  const single = { ...k, states };
  return { ...single, ...synchronise(single, lanes, homeKey) };
}

describe('the scheduler doubles homes only where that pays', () => {
  const kernels = exampleFiles.flatMap((file) =>
    ([{}, { D: 32, K: 8 }] as Record<string, number>[]).flatMap((sizes) => {
      const c = compileExample(file, 'auto', sizes);
      return ARCHS.map((arch) => ({ what: `${file} ${JSON.stringify(sizes)} ${arch}`, c, arch }));
    }),
  );

  it('fewer block barriers, as many resident blocks and no more global memory than single slots', () => {
    let doubled = 0;
    for (const { what, c, arch } of kernels) {
      const limits = archOf(arch).limits;
      const [k, single] = [schedule(c.chunk, limits), schedule(c.chunk, limits, 'never')];
      if (!pingPongs(k)) continue;
      doubled++;
      const resident = (x: ScheduledKernel) => residentWorkgroups(limits, x.workgroupFloats * 4);
      expect(blockBarriers(k), what).toBeLessThan(blockBarriers(single));
      expect(resident(k), what).toBeGreaterThanOrEqual(resident(single));
      expect(globalFloats(k), what).toBeLessThanOrEqual(globalFloats(single));
    }
    expect(doubled).toBeGreaterThan(0);
  });

  it('with tensor cores (bf16): the same against one slot with the staging placed, as many products on them', () => {
    let doubled = 0;
    for (const { what, c, arch } of kernels) {
      const limits = archOf(arch).limits;
      // In the blocks `single` has: the comparison is of slots, not of block sizes.
      const k = scheduleForward(c.chunk, archOf(arch), { dtype: 'bf16', threads: limits.invocations });
      if (!pingPongs(k)) continue;
      doubled++;
      const single = withTensorCores((l) => schedule(c.chunk, l, 'never'), limits, homeKey, 'bf16');
      const resident = (x: ScheduledKernel) => residentWorkgroups(limits, x.workgroupFloats * 4);
      expect(blockBarriers(k), what).toBeLessThan(blockBarriers(single));
      expect(resident(k), what).toBeGreaterThanOrEqual(resident(single));
      expect(globalFloats(k), what).toBeLessThanOrEqual(globalFloats(single));
      expect(k.tensorCores?.products.size ?? 0, what).toBeGreaterThanOrEqual(single.tensorCores?.products.size ?? 0);
    }
    expect(doubled).toBeGreaterThan(0);
  });

  it("the barriers depend on the slots: the doubled kernels' homes in one slot need more", () => {
    for (const { what, c, arch } of kernels) {
      const limits = archOf(arch).limits;
      const k = schedule(c.chunk, limits);
      if (pingPongs(k)) expect(blockBarriers(singleSlots(k, limits.lanes)), what).toBeGreaterThan(blockBarriers(k));
    }
  });

  it('refused somewhere: an update waits at a block barrier, yet every home keeps one slot', () => {
    const refused = kernels.filter(({ c, arch }) => {
      const limits = archOf(arch).limits;
      const k = schedule(c.chunk, limits);
      const waits = k.stages.some((s, i) => s.kind === 'update' && i > 0 && acrossWarps(k.barriers[i - 1]));
      return waits && !pingPongs(k);
    });
    expect(refused.length).toBeGreaterThan(0);
  });
});

/** Every example whose f32 kernel doubles a home at D = 32, K = 8, per arch. */
const doubledKernels = exampleFiles.flatMap((file) => {
  const c = compileExample(file, 'auto', { D: 32, K: 8 });
  return ARCHS.filter((arch) => pingPongs(schedule(c.chunk, archOf(arch).limits))).map(
    (arch) => [file, arch, c] as [string, (typeof ARCHS)[number], Compiled],
  );
});

describe('kernels with homes in two slots on the CPU against the f64 reference', () => {
  it('some example doubles a home at D = 32, K = 8', () => expect(doubledKernels.length).toBeGreaterThan(0));

  // K = 8 from start 3: 5 + 8 + 6 tokens (three chunks) and 5 + 8 + 8 + 6 (four), both ending in a
  // partial mini-batch, so the state is written back from either slot.
  describe.each(doubledKernels)('%s %s', (file, arch, c) => {
    for (const T of [19, 27])
      it(`f32, T = ${T} from start 3: within 1e-5`, async () => {
        const named = randomInputs(c.chunk, { B: 2, H: 2, T, start: 3, accum: true, seed: T });
        const loop = await CudaCpuInnerLoop.create(cudaCpuProgram(c, { arch, dtype: 'f32' }));
        expectReference(c, named, innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named))), file);
      });
  });
});

describe('WGSL kernels with homes in two slots against the f64 reference', () => {
  it('every example that doubles a home at D = 32, K = 8 on this adapter: T = 27 from start 3 (four chunks)', async () => {
    const ctx = await getGPUDevice();
    const limits = schedulingLimits(deviceLimits(ctx.device));
    const doubled = exampleFiles
      .map((file) => [file, compileExample(file, 'auto', { D: 32, K: 8 })] as const)
      .filter(([, c]) => pingPongs(schedule(c.chunk, limits)));
    expect(doubled.length).toBeGreaterThan(0);
    for (const [file, c] of doubled) {
      const named = randomInputs(c.chunk, { B: 2, H: 2, T: 27, start: 3, accum: true, seed: 27 });
      const loop = await webgpuInnerLoop(c, ctx);
      const got = innerLoopOutputTensors(await loop.run(innerLoopInputs(c.signature, named), { poison: true }));
      expectReference(c, named, got, file);
    }
  }, 120_000);
});

/** Every output within 1e-5 (relative) of the f64 reference. */
function expectReference(c: Compiled, named: Map<string, Tensor>, got: Map<string, Tensor>, what: string): void {
  const want = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
  for (const [name, w] of want) {
    const e = relativeError(got.get(name)!.data, w.data);
    expect(Number.isNaN(e), `${what}: ${name}`).toBe(false);
    expect(e, `${what}: ${name}`).toBeLessThan(1e-5);
  }
}
