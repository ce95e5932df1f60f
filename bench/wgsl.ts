/**
 * Throughput of the generated WGSL inner-loop kernel against the f64 reference executor, for
 * TTT-Linear and TTT-MLP at B·H = 8, T = 2048, D = 64, K = 16, on whatever adapter is found.
 * Usage: npx tsx bench/wgsl.ts [--tokens T] [--runs N]
 */
import { webgpuInnerLoop } from '../cli/link.ts';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compileSpec } from '../compiler/pipeline.ts';
import { innerLoopInputs } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { randomInputs } from '../tests/support/inputs.ts';
import { timeMedian } from './stats.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const T = arg('tokens', 2048);
const RUNS = arg('runs', 5);
const B = 2;
const H = 4;
/** The reference executor is slow; it runs on a shorter sequence and is reported per token. */
const REFERENCE_T = Math.min(T, 128);

const { adapterName } = await getGPUDevice();
console.log(
  `WGSL inner-loop kernel on "${adapterName}": B·H = ${B * H}, T = ${T}, D = 64, K = 16, median of ${RUNS} runs`,
);
console.log(
  'layer'.padEnd(12),
  'WGSL tok/s'.padStart(12),
  'f64 ref tok/s'.padStart(14),
  'ratio'.padStart(8),
  'kernel ms'.padStart(10),
);
for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt']) {
  const file = join(resolve(import.meta.dirname, '../examples'), spec);
  const result = compileSpec(readFileSync(file, 'utf8'), { file });
  if (!result.ok) throw new Error(`${spec} does not compile`);
  const c = result.compiled;
  const loop = await webgpuInnerLoop(c);
  const inputs = innerLoopInputs(c.signature, randomInputs(c.chunk, { B, H, T, seed: 1 }));
  const gpuMs = await timeMedian(RUNS, 1, () => loop.run(inputs));
  const refInputs = innerLoopInputs(c.signature, randomInputs(c.chunk, { B, H, T: REFERENCE_T, seed: 1 }));
  const refMs = await timeMedian(3, 1, () => runReference(c.chunk, refInputs));
  const gpuRate = (B * H * T) / (gpuMs / 1000);
  const refRate = (B * H * REFERENCE_T) / (refMs / 1000);
  console.log(
    c.layer.name.padEnd(12),
    gpuRate.toFixed(0).padStart(12),
    refRate.toFixed(0).padStart(14),
    (gpuRate / refRate).toFixed(1).padStart(8),
    gpuMs.toFixed(1).padStart(10),
  );
}
