/**
 * The backward of the inner loop: memory it keeps per (sequence, head) and, on the f64 reference
 * backend, its time over the forward's (median of runs). The fused WGSL backward's time:
 * bench/backward-webgpu.ts.
 *
 * Memory, f32, per (sequence, head), T tokens, mini-batch K, state size |θ| floats:
 * - saved at chunk starts (what the backward walk does): ⌈T/K⌉·|θ| (+ the initial accumulator);
 * - per-token states (autodiff through the primal form, what a generic framework keeps): T·|θ|;
 * - recompute the chain (nothing saved but θ): |θ|, at ⌈T/K⌉(⌈T/K⌉+1)/2 chunk forwards instead of ⌈T/K⌉.
 * Arithmetic: the chunk backward program's (which recomputes the chunk's forward) over the forward's.
 * Usage: npx tsx bench/backward.ts [--tokens T] [--runs N]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import type { Program } from '../compiler/ir/ir.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { size } from '../core/shape.ts';
import { innerLoopCotangents, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import { randomInputs } from '../tests/support/inputs.ts';
import { timeMedian } from './stats.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const T = arg('tokens', 2048);
const RUNS = arg('runs', 5);
/** The reference executor is slow: it times 2½ mini-batches of one sequence-head. */
const examples = resolve(import.meta.dirname, '../examples');
/** Arithmetic of a program: 2mnk per matrix product, one per element of every other computed node. */
function flops(p: Program): number {
  let total = 0;
  for (const n of p.nodes) {
    if (n.op.kind === 'matmul') total += 2 * size(n.shape) * p.nodes[n.args[0]].shape.at(-1)!;
    else if (!['input', 'const', 'reshape', 'expand'].includes(n.op.kind)) total += size(n.shape);
  }
  return total;
}
const mib = (floats: number) => `${((floats * 4) / 2 ** 20).toFixed(2)} MiB`;

console.log(
  `backward memory per (sequence, head), f32, T = ${T}; reference f64 (forward with checkpoints + backward)/forward time, median of ${RUNS}`,
);
console.log(
  'spec'.padEnd(24),
  '|θ| floats'.padStart(11),
  'chunk starts'.padStart(13),
  'per token'.padStart(11),
  'chain'.padStart(10),
  'IR fwd/bwd'.padStart(11),
  'flops bwd/fwd'.padStart(14),
  'ref (fwd+bwd)/fwd'.padStart(12),
);
for (const name of readdirSync(examples)
  .filter((f) => f.endsWith('.ttt'))
  .sort()) {
  const file = join(examples, name);
  const result = compileSpec(readFileSync(file, 'utf8'), { file });
  if (!result.ok) throw new Error(`${name} does not compile`);
  const c = result.compiled;
  const K = c.chunk.K;
  const theta = c.layer.states.reduce((n, s) => n + size(s.shape), 0);
  const backward = deriveChunkBackward(c.chunk);

  const named = randomInputs(c.chunk, { B: 1, H: 1, T: Math.floor(2.5 * K), seed: 1 });
  const sig = c.signature;
  const inputs = innerLoopInputs(sig, named);
  const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs));
  const cotangents = innerLoopCotangents(sig, inputs, new Map([['output', outputs.get('output')!]]));
  const forwardMs = await timeMedian(RUNS, 1, () => runReference(c.chunk, inputs));
  // The backward as training runs it: the forward saving its checkpoints, then the reverse walk.
  const backwardMs = await timeMedian(RUNS, 1, () => {
    const checkpoints: Checkpoints = [];
    runReference(c.chunk, inputs, checkpoints);
    return runReferenceBackward(backward, inputs, checkpoints, cotangents);
  });
  console.log(
    name.padEnd(24),
    String(theta).padStart(11),
    mib(Math.ceil(T / K) * theta + theta).padStart(13),
    mib(T * theta).padStart(11),
    mib(theta).padStart(10),
    `${c.chunk.program.nodes.length}/${backward.program.nodes.length}`.padStart(11),
    (flops(backward.program) / flops(c.chunk.program)).toFixed(2).padStart(14),
    (backwardMs / forwardMs).toFixed(2).padStart(18),
  );
}
