/**
 * Global memory read-modify-written in the mini-batch loop of every example's kernels: per
 * example, variant (prefill, decode) and target (WebGPU's default limits; sm_80 and sm_90, f32
 * and bf16), the global buffers both read and written inside the loop (compiler/kernel/loop-traffic.ts),
 * the scratch and on-chip bytes per workgroup, workgroups per SM by shared memory, block barriers
 * per mini-batch, and where each carried value lives (state/accum/opt: w on chip, w2 on chip in
 * two slots, g in place in global memory, p passed from the input port to the output port).
 *
 *   npx tsx bench/loop-traffic.ts [name filter]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loopGlobalTraffic } from '../compiler/kernel/loop-traffic.ts';
import type { KernelFeatures } from '../compiler/kernel/features.ts';
import { lowerKernel } from '../compiler/kernel/lower.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { acrossWarps } from '../compiler/schedule/barriers.ts';
import type { TargetLimits } from '../compiler/schedule/kernel.ts';
import { residentWorkgroups } from '../compiler/schedule/layout.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { scheduleWithTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { CUDA_FEATURES } from '../targets/cuda/kernel.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';

const root = join(import.meta.dirname, '../examples');
const specs = ['.', 'rules']
  .flatMap((d) =>
    readdirSync(join(root, d))
      .filter((f) => f.endsWith('.ttt'))
      .map((f) => join(d, f)),
  )
  .sort();
const only = process.argv[2];
const targets: [string, TargetLimits, typeof schedule, KernelFeatures][] = [
  ['wgsl', WEBGPU_DEFAULT_LIMITS, schedule, {}],
  ...(['sm_80', 'sm_90'] as const).flatMap((arch): [string, TargetLimits, typeof schedule, KernelFeatures][] => [
    [`${arch} f32`, archOf(arch).limits, schedule, CUDA_FEATURES],
    [`${arch} bf16`, archOf(arch).limits, (c, l) => scheduleWithTensorCores(c, l), CUDA_FEATURES],
  ]),
];

console.log(
  '| example | kernel | target | global RMW in loop | scratch B | shared B | blk/SM | block barriers | homes |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const spec of specs) {
  if (only && !spec.includes(only)) continue;
  const text = readFileSync(join(root, spec), 'utf8');
  const c = compileSpec(text, { file: spec });
  if (!c.ok) throw new Error(`${spec} does not compile`);
  for (const v of c.compiled.variants)
    for (const [target, limits, scheduleFor, features] of targets) {
      const k = scheduleFor(v.chunk, limits);
      const { readWritten } = loopGlobalTraffic(lowerKernel(k, c.compiled.signature, text.split('\n'), features));
      const homes = [...k.states]
        .map(
          ([s, h]) =>
            `${s}:${Object.entries(h)
              .map(([role, x]) => `${role[0]}=${x.space[0]}${'pingPong' in x && x.pingPong ? '2' : ''}`)
              .join(',')}`,
        )
        .join(' ');
      const blocks = residentWorkgroups(limits, k.workgroupFloats * 4);
      const row = [
        spec.replace(/^\.\//, ''),
        v.name,
        target,
        readWritten.join(', ') || '-',
        k.scratchFloats * 4,
        k.workgroupFloats * 4,
        Number.isFinite(blocks) ? blocks : '-',
        k.barriers.filter(acrossWarps).length,
        homes,
      ];
      console.log(`| ${row.join(' | ')} |`);
    }
}
