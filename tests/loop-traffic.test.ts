/**
 * What the prefill kernels' mini-batch loop reads and writes in global memory, from the lowered
 * kernel IR (compiler/kernel/loop-traffic.ts), for every example and rule example on every
 * target's limits: an accumulator is never read-modify-written there (a whole-mini-batch chunk
 * starts it at zero after the first chunk); the carried values are kept on chip whenever they fit
 * the on-chip budget beside the largest buffer; and where they and every buffer fit it without sharing, nothing in global
 * memory is both read and written inside the loop. The fit is computed from the kernel, not listed.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { size } from '../compiler/ir/ir.ts';
import { loopGlobalTraffic } from '../compiler/kernel/loop-traffic.ts';
import type { KernelFeatures } from '../compiler/kernel/features.ts';
import { lowerKernel } from '../compiler/kernel/lower.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import type { ScheduledKernel, TargetLimits } from '../compiler/schedule/kernel.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { scheduleWithTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { CUDA_FEATURES } from '../targets/cuda/kernel.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';
import { repoRoot } from './support/specs.ts';

const specs = ['examples', 'examples/rules'].flatMap((dir) =>
  readdirSync(join(repoRoot, dir))
    .filter((f) => f.endsWith('.ttt'))
    .sort()
    .map((f) => join(dir, f)),
);

const targets: [string, TargetLimits, typeof schedule, KernelFeatures][] = [
  ['WGSL', WEBGPU_DEFAULT_LIMITS, schedule, {}],
  ...(['sm_80', 'sm_90'] as const).flatMap((arch): [string, TargetLimits, typeof schedule, KernelFeatures][] => [
    [`${arch} f32`, archOf(arch).limits, schedule, CUDA_FEATURES],
    [`${arch} bf16`, archOf(arch).limits, (c, l) => scheduleWithTensorCores(c, l), CUDA_FEATURES],
  ]),
];

/** Floats of the carried values a kernel keeps between chunks (every home but those passed through its ports). */
function keptFloats(k: ScheduledKernel): number {
  let floats = 0;
  for (const s of k.chunk.layer.states)
    for (const h of Object.values(k.states.get(s.name)!)) if (h.space !== 'ports') floats += size(s.shape);
  return floats;
}

describe.each(specs)('the prefill loop of %s in global memory', (spec) => {
  const text = readFileSync(join(repoRoot, spec), 'utf8');
  const compiled = compileSpec(text, { file: spec });
  if (!compiled.ok) throw new Error(`${spec} does not compile`);
  const { chunk, signature } = compiled.compiled;
  for (const [target, limits, scheduleFor, features] of targets) {
    it(target, () => {
      const k = scheduleFor(chunk, limits);
      const { read, written, readWritten } = loopGlobalTraffic(lowerKernel(k, signature, text.split('\n'), features));
      expect(chunk.rows).toBe(chunk.K);
      // Accumulators: read from their input by the first chunk, written to their output by the last.
      expect([...written].filter((b) => b.startsWith('in.'))).toEqual([]);
      expect([...read].filter((b) => b.startsWith('out.accum.'))).toEqual([]);
      const budget = limits.workgroupBytes / 4;
      const sizes = [...k.buffers.keys()].map((id) => size(k.program.nodes[id].shape));
      // States and optimizer states on chip where they fit beside the largest buffer (one stage's result at a time).
      if (keptFloats(k) + Math.max(0, ...sizes) <= budget)
        expect(readWritten.filter((b) => b.startsWith('out.'))).toEqual([]);
      // Nothing read-modify-written where the carried values and every buffer fit without sharing.
      if (keptFloats(k) + sizes.reduce((n, x) => n + x, 0) <= budget) expect(readWritten).toEqual([]);
    });
  }
});
