/**
 * The fused backward on WebGPU (Dawn; SwiftShader on a machine without a GPU): the time of a
 * backward call (the forward saving its checkpoints, then the backward kernel) over the time of a
 * forward call, each a whole call from upload to download, median of many runs; and the memory the
 * checkpoints take per (sequence, head) against keeping every token's state.
 * Usage: npx tsx bench/backward-webgpu.ts [--tokens T] [--heads BH] [--runs N] [--dim D] [SPEC ...]
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { webgpuInnerLoop, webgpuInnerLoopBackward } from '../cli/link.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { stateFloats } from '../core/packing.ts';
import { size } from '../core/shape.ts';
import { innerLoopCotangents, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { checkpointFloats } from '../runtime/webgpu/backward.ts';
import { randomInputs } from '../tests/support/inputs.ts';
import { timeMedian } from './stats.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const T = arg('tokens', 256);
const BH = arg('heads', 4);
const RUNS = arg('runs', 9);
const D = arg('dim', 64);
const specs = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
const examples = resolve(import.meta.dirname, '../examples');
const mib = (floats: number) => `${((floats * 4) / 2 ** 20).toFixed(2)} MiB`;

console.log(`WebGPU backward/forward time (whole calls, median of ${RUNS}), B·H = ${BH}, T = ${T}, D = ${D}`);
console.log(
  'spec'.padEnd(16),
  'fwd ms'.padStart(9),
  'bwd ms'.padStart(9),
  'bwd/fwd'.padStart(8),
  'checkpoints/(seq, head)'.padStart(24),
  'per-token states'.padStart(17),
);
for (const name of specs.length ? specs : ['ttt_linear.ttt', 'ttt_mlp.ttt']) {
  const file = join(examples, name);
  const result = compileSpec(readFileSync(file, 'utf8'), { file, overrides: new Map([['D', D]]) });
  if (!result.ok) throw new Error(`${name} does not compile`);
  const c = result.compiled;
  const named = randomInputs(c.chunk, { B: 1, H: BH, T, seed: 1 });
  const inputs = innerLoopInputs(c.signature, named);
  const forward = await webgpuInnerLoop(c);
  const backward = await webgpuInnerLoopBackward(c);
  const outputs = innerLoopOutputTensors(await forward.run(inputs));
  const cotangents = innerLoopCotangents(c.signature, inputs, new Map([['output', outputs.get('output')!]]));
  const forwardMs = await timeMedian(RUNS, 1, () => forward.run(inputs));
  const backwardMs = await timeMedian(RUNS, 1, () => backward.run(inputs, cotangents));
  const theta = c.layer.states.reduce((n, s) => n + size(s.shape), 0);
  console.log(
    name.padEnd(16),
    forwardMs.toFixed(1).padStart(9),
    backwardMs.toFixed(1).padStart(9),
    (backwardMs / forwardMs).toFixed(2).padStart(8),
    `${mib(checkpointFloats(backward.manifest, 0, T))} (${stateFloats(backward.manifest.layout)}·chunks)`.padStart(24),
    mib(T * theta).padStart(17),
  );
}
