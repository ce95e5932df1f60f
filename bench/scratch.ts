/**
 * Global scratch per (sequence, head) of the fused kernels at a large mini-batch: what does not fit
 * on chip goes to each workgroup's (thread block's) slice of a scratch buffer, and at K = 2048 the
 * K×K matrices of the dual form dominate it. For every example whose mini-batch is `K`, compiled
 * with K = 2048 (LaCT's own size), scheduled for WebGPU's default limits and for sm_90: the slice
 * (after the scheduler shares space between buffers whose lifetimes do not overlap), the sum of
 * the buffers placed there (without sharing), and how many of them are K×K; then the same for the
 * fused backward kernel of each (compiler/schedule/backward.ts), which keeps the backward's
 * products of the chunk beside the forward's.
 * Usage: npx tsx bench/scratch.ts [--K 2048]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import type { ChunkProgram } from '../compiler/dualform/derive.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import type { ScheduledKernel } from '../compiler/schedule/kernel.ts';
import { scheduleBackward } from '../compiler/schedule/backward.ts';
import type { TargetLimits } from '../compiler/schedule/kernel.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { size } from '../compiler/ir/ir.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const K = arg('K', 2048);
const root = resolve(import.meta.dirname, '../examples');
const specs = [
  ...readdirSync(root).filter((f) => f.endsWith('.ttt')),
  ...readdirSync(join(root, 'rules'))
    .filter((f) => f.endsWith('.ttt'))
    .map((f) => `rules/${f}`),
].sort();

const MiB = (floats: number) => ((floats * 4) / 2 ** 20).toFixed(1);

/** The scratch slice, the sum of the buffers in it, and how many of those are K×K. */
function scratchOf(kernel: ScheduledKernel): { slice: number; unshared: number; square: number } {
  let unshared = 0;
  let square = 0;
  for (const [id, place] of kernel.buffers) {
    if (place.space !== 'scratch') continue;
    const shape = kernel.program.nodes[id].shape;
    unshared += size(shape);
    if (shape.filter((d) => d === K).length >= 2) square++;
  }
  return { slice: kernel.scratchFloats, unshared, square };
}

const kernels: [string, (chunk: ChunkProgram, limits: TargetLimits) => ScheduledKernel][] = [
  ['prefill kernel', schedule],
  ['fused backward kernel', (chunk, limits) => scheduleBackward(deriveChunkBackward(chunk), limits)],
];
const chunks = new Map<string, ChunkProgram | string>();
for (const spec of specs) {
  const file = join(root, spec);
  const text = readFileSync(file, 'utf8');
  if (!/minibatch\s+K\b/.test(text)) continue;
  const result = compileSpec(text, { file, overrides: new Map([['K', K]]) });
  chunks.set(
    spec,
    result.ok ? result.compiled.variants[0].chunk : formatDiagnostics(result.diagnostics, text).split('\n')[0],
  );
}

for (const [kind, scheduled] of kernels) {
  console.log(`Global scratch per (sequence, head) at K = ${K}, ${kind}; MiB`);
  console.log(
    'example'.padEnd(30),
    'WGSL slice'.padStart(11),
    'unshared'.padStart(9),
    'K×K'.padStart(4),
    'sm_90 slice'.padStart(12),
    'unshared'.padStart(9),
    'K×K'.padStart(4),
  );
  for (const [spec, chunk] of chunks) {
    if (typeof chunk === 'string') {
      console.log(spec.padEnd(30), chunk);
      continue;
    }
    try {
      const wgsl = scratchOf(scheduled(chunk, WEBGPU_DEFAULT_LIMITS));
      const cuda = scratchOf(scheduled(chunk, archOf('sm_90').limits));
      console.log(
        spec.padEnd(30),
        MiB(wgsl.slice).padStart(11),
        MiB(wgsl.unshared).padStart(9),
        String(wgsl.square).padStart(4),
        MiB(cuda.slice).padStart(12),
        MiB(cuda.unshared).padStart(9),
        String(cuda.square).padStart(4),
      );
    } catch (e) {
      console.log(spec.padEnd(30), (e as Error).message.split('\n')[0]);
    }
  }
  console.log('');
}
