// The layer's WGSL kernels (runtime/layer/kernels) against the f64 reference, and the whole
// WebGPU layer against the published PyTorch layer's outputs. Runs on SwiftShader where there is
// no GPU, so sizes stay small.
import { referenceLayer, webgpuLayer } from '../cli/link-layer.ts';
import { referenceInnerLoop, webgpuInnerLoop } from '../cli/link.ts';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { relativeError, type Tensor } from '../core/tensor.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { type LayerConfig, resolveLayerConfig } from '../runtime/layer/config.ts';
import { linear } from '../runtime/layer/f64-ops.ts';
import { MATMUL_TILE_COLS, MATMUL_TILE_ROWS, SKINNY_MAX_ROWS } from '../runtime/layer/kernels/matmul.ts';
import type { InnerLoopBackend } from '../runtime/layer/layer.ts';
import { ReferenceParts } from '../runtime/layer/reference-layer.ts';
import { LAYER_SHADERS, LayerKernels } from '../runtime/layer/webgpu-kernels.ts';
import { WebGPUParts } from '../runtime/layer/webgpu-layer.ts';
import { layerFromSafeFile, type LayerWeights } from '../runtime/layer/weights.ts';
import { readSafetensorsFile, toFloat64 } from '../runtime/safetensors.ts';
import { type GPUContext, getGPUDevice } from '../runtime/webgpu/device.ts';
import { compileShader } from '../runtime/webgpu/shader.ts';
import { randomWeights } from './support/layer-rules.ts';
import { normals, rng } from './support/random.ts';
import { REFERENCE_FILES } from './support/reference-vectors.ts';
import { compileExample, referenceDir } from './support/specs.ts';

/** f32 kernels against f64: rounding of inputs and of sums over a few hundred terms. */
const F32_TOLERANCE = 1e-5;

let ctx: GPUContext;
beforeAll(async () => {
  ctx = await getGPUDevice();
});

function storageOf(data: Float32Array<ArrayBuffer>): GPUBuffer {
  const buffer = ctx.device.createBuffer({
    size: Math.max(16, data.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  ctx.device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

describe('layer kernels', () => {
  it('every shader compiles with no errors and no warnings', async () => {
    for (const [name, code] of Object.entries(LAYER_SHADERS)) {
      const { messages } = await compileShader(ctx.device, code, `layer/${name}.wgsl`);
      expect(messages, name).toEqual([]);
    }
  });

  it('the matmul kernels agree with f64 on uneven sizes: tiled, edge tiles, and skinny for decode', async () => {
    const kernels = await LayerKernels.forDevice(ctx.device);
    const r = rng(7);
    const cases = [
      [SKINNY_MAX_ROWS, 70, 37],
      [1, 200, 96],
      [MATMUL_TILE_ROWS + 3, MATMUL_TILE_COLS * 2 + 5, 33],
      [45, 20, 128],
    ];
    for (const [rows, cols, inner] of cases) {
      const x = normals(r, rows * inner);
      const w = normals(r, cols * inner, 1 / Math.sqrt(inner));
      const y = storageOf(new Float32Array(rows * cols));
      const batch = kernels.batch();
      batch.matmul(storageOf(Float32Array.from(x)), storageOf(Float32Array.from(w)), y, rows, cols, inner);
      const [got] = await batch.read([{ buffer: y, floats: rows * cols }]);
      const want = linear(Float64Array.from(Float32Array.from(x)), rows, Float64Array.from(Float32Array.from(w)), cols);
      expect(relativeError(got, want), `${rows}×${cols}×${inner}`).toBeLessThan(F32_TOLERANCE);
    }
  });
});

describe('WebGPU layer parts against the f64 reference parts', () => {
  it('projections, RoPE at an offset, lr gate, post-norm with the gate, output projection', async () => {
    // Odd sizes on purpose: 3 heads, T not a multiple of K, a start in the middle of a mini-batch.
    const signature = compileExample('ttt_linear.ttt', 'auto', { D: 16, K: 8 }).signature;
    const config = resolveLayerConfig(signature, { heads: 3, baseLr: 0.7, useGate: true });
    const weights = randomWeights(signature, config, 3);
    const gpu = await WebGPUParts.create(signature, config, weights, ctx);
    const cpu = new ReferenceParts(signature, config, weights);
    const r = rng(11);
    const x = { shape: [2, 13, 48], data: Float64Array.from(Float32Array.from(normals(r, 2 * 13 * 48))) };
    const [got, want] = [await gpu.project(x, 5), await cpu.project(x, 5)];
    for (const view of ['q', 'k', 'v'])
      expect(relativeError(got.views.get(view)!.data, want.views.get(view)!.data), view).toBeLessThan(F32_TOLERANCE);
    expect(relativeError(got.lr!.data, want.lr!.data), 'lr').toBeLessThan(F32_TOLERANCE);
    const inner = { shape: [2, 3, 13, 16], data: normals(r, 2 * 3 * 13 * 16) };
    expect(relativeError((await got.finish(inner)).data, (await want.finish(inner)).data), 'finish').toBeLessThan(
      F32_TOLERANCE,
    );
    gpu.destroy();
  });
});

interface ReferenceCase {
  compiled: Compiled;
  config: LayerConfig;
  weights: LayerWeights;
  x: Tensor;
  layer: Tensor;
  decode?: Tensor;
}

async function openCase(name: string): Promise<ReferenceCase> {
  const file = await readSafetensorsFile(join(referenceDir, name));
  const get = (n: string) => ({ shape: file.get(n).shape, data: toFloat64(file.get(n)) });
  const spec = file.metadata.kind === 'linear' ? 'ttt_linear.ttt' : 'ttt_mlp.ttt';
  const compiled = compileExample(spec, 'auto', {
    D: Number(file.metadata.head_dim),
    K: Number(file.metadata.mini_batch_size),
  });
  const { config, weights } = layerFromSafeFile(file, compiled.signature, { prefix: 'weights.' });
  const decode = file.tensors.has('output.decode') ? get('output.decode') : undefined;
  return { compiled, config, weights, x: get('input.hidden_states'), layer: get('output.layer'), decode };
}

/** The first n tokens of t [B, T, C]. */
function firstTokens(t: Tensor, n: number): Tensor {
  const [B, T, C] = t.shape;
  const data = new Float64Array(B * n * C);
  for (let b = 0; b < B; b++) data.set(t.data.subarray(b * T * C, (b * T + n) * C), b * n * C);
  return { shape: [B, n, C], data };
}

async function checkAgainstReference(
  c: ReferenceCase,
  label: string,
  innerLoop: InnerLoopBackend,
  decodeSteps: number,
): Promise<void> {
  const layer = await webgpuLayer(c.compiled, c.config, c.weights, { innerLoop, context: ctx });
  try {
    const { output } = await layer.forward(c.x);
    const layerError = relativeError(output.data, c.layer.data);
    console.log(`${label}: output.layer rel. error ${layerError.toExponential(2)}`);
    expect(layerError).toBeLessThan(1e-4);
    if (!c.decode || !decodeSteps) return;
    const { output: decoded } = await layer.decode(firstTokens(c.x, decodeSteps));
    const decodeError = relativeError(decoded.data, firstTokens(c.decode, decodeSteps).data);
    console.log(`${label}: output.decode (${decodeSteps} steps) rel. error ${decodeError.toExponential(2)}`);
    expect(decodeError).toBeLessThan(1e-4);
  } finally {
    layer.destroy();
  }
}

describe('WebGPU layer against the published PyTorch layer', () => {
  for (const name of REFERENCE_FILES) {
    it(`${name}: the f32 layer kernels around the f64 inner loop, prefill and every decode step`, async () => {
      const c = await openCase(name);
      await checkAgainstReference(
        c,
        `${name}, f64 inner loop`,
        referenceInnerLoop(c.compiled),
        c.decode?.shape[1] ?? 0,
      );
    });

    // Building the WGSL inner loop's pipeline takes seconds on SwiftShader, and so does each
    // decode step through it: a prefix of the decode steps shows the cache works.
    it(`${name}: the whole WebGPU layer (WGSL inner loop)`, async () => {
      const c = await openCase(name);
      await checkAgainstReference(c, `${name}, WGSL inner loop`, await webgpuInnerLoop(c.compiled, ctx), 4);
    });
  }
});

describe('WebGPU layer with update rules against the f64 layer', () => {
  it('the rule gates (decay, momentum, per-state rates) agree with the f64 parts', async () => {
    for (const name of ['rules/titans_mlp_memory.ttt', 'rules/lact_swiglu.ttt']) {
      const signature = compileExample(name, 'auto', { D: 8, K: 4 }).signature;
      const config = resolveLayerConfig(signature, { heads: 3, baseLr: 0.7 });
      const weights = randomWeights(signature, config, 4);
      const gpu = await WebGPUParts.create(signature, config, weights, ctx);
      const cpu = new ReferenceParts(signature, config, weights);
      const x = { shape: [2, 5, 24], data: Float64Array.from(Float32Array.from(normals(rng(12), 2 * 5 * 24))) };
      const [got, want] = [await gpu.project(x, 1), await cpu.project(x, 1)];
      expect([...got.tokens!.keys()], name).toEqual(signature.rule!.tokenInputs);
      for (const [input, t] of want.tokens!)
        expect(relativeError(got.tokens!.get(input)!.data, t.data), `${name}: ${input}`).toBeLessThan(F32_TOLERANCE);
      got.discard();
      gpu.destroy();
    }
  });

  // Building the WGSL inner loop takes seconds on SwiftShader: one spec per rule family, few tokens.
  for (const name of [
    'rules/titans_mlp_memory.ttt',
    'rules/gated_deltanet.ttt',
    'rules/per_state_rates.ttt',
    'rules/lact_swiglu.ttt',
  ]) {
    it(`${name}: the whole WebGPU layer equals the f64 layer, prefill and decode, optimizer states carried`, async () => {
      const compiled = compileExample(name, 'auto', { D: 8, K: 4 });
      const config = resolveLayerConfig(compiled.signature, { heads: 2, baseLr: 0.5 });
      const weights = randomWeights(compiled.signature, config, 21);
      const x = { shape: [2, 7, 16], data: Float64Array.from(Float32Array.from(normals(rng(5), 2 * 7 * 16))) };
      const reference = referenceLayer(compiled, config, weights);
      const { output: want, cache: wantCache } = await reference.forward(x);
      const layer = await webgpuLayer(compiled, config, weights, { context: ctx });
      try {
        const { output, cache } = await layer.forward(x);
        const error = relativeError(output.data, want.data);
        console.log(`${name}: WebGPU layer prefill rel. error ${error.toExponential(2)}`);
        expect(error).toBeLessThan(1e-4);
        for (const [s, t] of wantCache.opts)
          expect(relativeError(cache.opts.get(s)!.data, t.data), s).toBeLessThan(1e-4);
        // Decode: prefill 5 tokens, then step through the last 2, continuing from the carried caches.
        const { output: head, cache: stepCache } = await layer.forward(firstTokens(x, 5));
        const steps: Tensor[] = [head];
        for (let t = 5; t < 7; t++) steps.push(await layer.step(tokenAt(x, t), stepCache));
        const decodeError = relativeError(joinAlongT(steps).data, want.data);
        console.log(`${name}: WebGPU layer prefill + decode rel. error ${decodeError.toExponential(2)}`);
        expect(decodeError).toBeLessThan(1e-4);
        for (const [s, t] of wantCache.states)
          expect(relativeError(stepCache.states.get(s)!.data, t.data), s).toBeLessThan(1e-4);
        for (const [s, t] of wantCache.opts)
          expect(relativeError(stepCache.opts.get(s)!.data, t.data), s).toBeLessThan(1e-4);
      } finally {
        layer.destroy();
      }
    });
  }
});

/** Token t of x [B, T, C], as [B, 1, C]. */
function tokenAt(x: Tensor, t: number): Tensor {
  const [B, T, C] = x.shape;
  const data = new Float64Array(B * C);
  for (let b = 0; b < B; b++) data.set(x.data.subarray((b * T + t) * C, (b * T + t + 1) * C), b * C);
  return { shape: [B, 1, C], data };
}

/** [B, Ti, C] tensors joined along T. */
function joinAlongT(parts: Tensor[]): Tensor {
  const [B, , C] = parts[0].shape;
  const T = parts.reduce((a, p) => a + p.shape[1], 0);
  const data = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    let t0 = 0;
    for (const p of parts) {
      const Ti = p.shape[1];
      data.set(p.data.subarray(b * Ti * C, (b + 1) * Ti * C), (b * T + t0) * C);
      t0 += Ti;
    }
  }
  return { shape: [B, T, C], data };
}
