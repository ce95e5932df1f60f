/**
 * `npm run bench:layer [-- --tokens N --runs N --steps N]`: the WebGPU TTT-Linear layer at the
 * 125M model's size (width 768, 12 heads of 64, K = 16, one sequence) on whatever adapter
 * WebGPU finds, with random weights: prefill tokens/s (median of --runs runs of --tokens
 * tokens, default 5 × 2048) and decode latency per token (median of --steps steps after a
 * prefill), each with its time split between the projections (q, k, v, lr and gate columns in
 * one matmul, then head split, RoPE and the lr gate), the inner-loop kernel, and the post-norm and
 * output projection. Each phase's time includes its uploads and read-backs. Figures measured so
 * far are in docs/performance.md.
 */
import { webgpuLayer } from '../cli/link-layer.ts';
import { join } from 'node:path';
import type { Tensor } from '../core/tensor.ts';
import { resolveLayerConfig } from '../runtime/layer/config.ts';
import type { LayerTimings, SequenceLayer } from '../runtime/layer/layer.ts';
import { assembleWeights, weightSpecs } from '../runtime/layer/weights.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { normals, rng } from '../tests/support/random.ts';
import { compileExample } from '../tests/support/specs.ts';

const WIDTH = 768;
const HEADS = 12;
const HEAD_DIM = 64;

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`--${name} expects a positive integer, got '${process.argv[at + 1]}'`);
  return value;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median of each phase over the calls, and the phases' shares of their sum. */
function split(timings: LayerTimings[]): string {
  const phase = (key: keyof LayerTimings) => median(timings.map((t) => t[key]));
  const parts = {
    projections: phase('project'),
    'inner loop': phase('innerLoop'),
    'post-norm + o_proj': phase('finish'),
  };
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  return Object.entries(parts)
    .map(([name, ms]) => `${name} ${ms.toFixed(1)} ms (${((100 * ms) / total).toFixed(0)}%)`)
    .join(', ');
}

function randomTokens(seed: number, T: number): Tensor {
  return { shape: [1, T, WIDTH], data: normals(rng(seed), T * WIDTH) };
}

async function buildLayer(): Promise<SequenceLayer> {
  const compiled = compileExample('ttt_linear.ttt', 'auto', { D: HEAD_DIM, K: 16 });
  const signature = compiled.signature;
  const config = resolveLayerConfig(signature, { heads: HEADS, baseLr: 1, useGate: false });
  const r = rng(1);
  const byName = new Map<string, Tensor>();
  for (const spec of weightSpecs(signature, config)) {
    const shape = spec.shapes[0];
    byName.set(spec.name, {
      shape,
      data: normals(
        r,
        shape.reduce((a, b) => a * b, 1),
        1 / Math.sqrt(shape[shape.length - 1]),
      ),
    });
  }
  return webgpuLayer(compiled, config, assembleWeights(signature, byName));
}

async function main(): Promise<void> {
  const T = option('tokens', 2048);
  const runs = option('runs', 5);
  const steps = option('steps', 16);
  const { adapterName } = await getGPUDevice();
  console.log(`adapter: ${adapterName}`);
  console.log(
    `layer: TTT-Linear (${join('examples', 'ttt_linear.ttt')}), width ${WIDTH}, ${HEADS} heads of ${HEAD_DIM}, K = 16, batch 1, f32`,
  );
  const started = performance.now();
  const layer = await buildLayer();
  console.log(`set-up (weights upload, pipelines): ${((performance.now() - started) / 1000).toFixed(1)} s`);

  await layer.forward(randomTokens(2, Math.min(T, 64))); // first dispatches of each pipeline
  const seconds: number[] = [];
  const prefillTimings: LayerTimings[] = [];
  let cache;
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    ({ cache } = await layer.forward(randomTokens(3 + run, T)));
    seconds.push((performance.now() - t0) / 1000);
    prefillTimings.push(layer.lastTimings);
  }
  const s = median(seconds);
  console.log(`prefill, ${T} tokens: median ${s.toFixed(2)} s over ${runs} runs = ${(T / s).toFixed(1)} tokens/s`);
  console.log(`  ${split(prefillTimings)}`);

  const latencies: number[] = [];
  const stepTimings: LayerTimings[] = [];
  for (let step = 0; step < steps; step++) {
    const t0 = performance.now();
    await layer.step({ shape: [1, WIDTH], data: normals(rng(100 + step), WIDTH) }, cache!);
    latencies.push(performance.now() - t0);
    stepTimings.push(layer.lastTimings);
  }
  console.log(`decode after the prefill: median ${median(latencies).toFixed(1)} ms per token over ${steps} steps`);
  console.log(`  ${split(stepTimings)}`);
  layer.destroy();
}

await main();
