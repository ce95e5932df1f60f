/**
 * The layer's own arithmetic on WebGPU in f32. One matmul projects x onto every column the layer
 * needs at once: the views (q, k, v), the lr gate (H columns), the gates of an update rule's
 * per-token inputs (H columns each) and, when gated, the output gate (C columns), with their
 * weights stacked as one [columns, C] matrix uploaded at creation. Small kernels then split heads
 * and apply RoPE, and form lr and the rule's inputs; after the inner loop, one kernel joins
 * heads, applies post-norm and the gate, and the matmul kernel does the output projection. The
 * fused projection stays on the device between the two halves for the gate.
 */
import { type KernelSignature, viewPorts } from '../../core/signature.ts';
import type { Tensor } from '../../core/tensor.ts';
import { deviceLimits, type GPUContext, getGPUDevice } from '../webgpu/device.ts';
import { WebGPUInnerLoop } from '../webgpu/inner-loop.ts';
import type { WgslKernelManifest } from '../../core/manifest.ts';
import type { LayerConfig, ViewName } from './config.ts';
import { type InnerLoopBackend, type LayerParts, POST_NORM_EPS, type Projected, SequenceLayer } from './layer.ts';
import { ropeTable } from './rope.ts';
import { ruleGateScale } from './rule-gates.ts';
import { LayerKernels } from './webgpu-kernels.ts';
import { type LayerOptions, type LayerWeights, loadLayerWeights, type WeightsSource } from './weights.ts';

const ROTATED: ReadonlySet<string> = new Set<ViewName>(['q', 'k']);

export class DeviceLimitError extends Error {}

/** Where each block of the fused projection's columns starts. */
interface ColumnLayout {
  views: Map<string, number>;
  lr?: number;
  /** An update rule's per-token input → its first column. */
  ruleGates: Map<string, number>;
  gate?: number;
  /** Columns in all: the row stride of the fused projection. */
  total: number;
}

function columnLayout(signature: KernelSignature, config: LayerConfig, weights: LayerWeights): ColumnLayout {
  let total = 0;
  const take = (n: number) => (total += n) - n;
  const views = new Map(viewPorts(signature).map((v) => [v.name, take(config.width)]));
  const lr = weights.lrWeight ? take(config.heads) : undefined;
  const ruleGates = new Map([...weights.ruleGates.keys()].map((input) => [input, take(config.heads)]));
  const gate = config.useGate ? take(config.width) : undefined;
  return { views, lr, ruleGates, gate, total };
}

/** The stacked [total, C] weight of the fused projection, in f32. */
function stackedWeights(weights: LayerWeights, layout: ColumnLayout, C: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(layout.total * C);
  const projections: Record<ViewName, Tensor> = { q: weights.qProj, k: weights.kProj, v: weights.vProj };
  for (const [view, column] of layout.views) out.set(projections[view as ViewName].data, column * C);
  if (layout.lr !== undefined) out.set(weights.lrWeight!.data, layout.lr * C);
  for (const [input, column] of layout.ruleGates) out.set(weights.ruleGates.get(input)!.weight.data, column * C);
  if (layout.gate !== undefined) out.set(weights.gProj!.data, layout.gate * C);
  return out;
}

export class WebGPUParts implements LayerParts {
  private constructor(
    private readonly ctx: GPUContext,
    private readonly kernels: LayerKernels,
    private readonly config: LayerConfig,
    private readonly columns: ColumnLayout,
    private readonly buffers: {
      stacked: GPUBuffer;
      oProj: GPUBuffer;
      normWeight: GPUBuffer;
      normBias: GPUBuffer;
      lrBias: GPUBuffer;
      cos: GPUBuffer;
      sin: GPUBuffer;
      /** An update rule's per-token input → its gate's bias [H]. */
      ruleBiases: Map<string, GPUBuffer>;
    },
  ) {}

  static async create(
    signature: KernelSignature,
    config: LayerConfig,
    weights: LayerWeights,
    ctx: GPUContext,
  ): Promise<WebGPUParts> {
    const kernels = await LayerKernels.forDevice(ctx.device);
    const columns = columnLayout(signature, config, weights);
    const rope = ropeTable(config.headDim, config.miniBatch, config.ropeTheta);
    const upload = (label: string, data: ArrayLike<number>) => uploadF32(ctx.device, label, Float32Array.from(data));
    const buffers = {
      stacked: uploadF32(ctx.device, 'layer/stacked_proj', stackedWeights(weights, columns, config.width)),
      oProj: upload('layer/o_proj', weights.oProj.data),
      normWeight: upload('layer/post_norm.weight', weights.postNormWeight.data),
      normBias: upload('layer/post_norm.bias', weights.postNormBias.data),
      lrBias: upload('layer/lr_bias', weights.lrBias?.data ?? [0]),
      cos: upload('layer/rope_cos', rope.cos),
      sin: upload('layer/rope_sin', rope.sin),
      ruleBiases: new Map(
        [...weights.ruleGates].map(([input, g]) => [input, upload(`layer/rule_gate_bias_${input}`, g.bias.data)]),
      ),
    };
    return new WebGPUParts(ctx, kernels, config, columns, buffers);
  }

  async project(x: Tensor, offset: number): Promise<Projected> {
    const { device } = this.ctx;
    const { width: C, heads: H, headDim: D, miniBatch: K } = this.config;
    const [B, T] = x.shape;
    const N = B * T;
    const stride = this.columns.total;
    this.checkSize('the fused projection', N * stride);
    const xBuffer = uploadF32(device, 'layer/x', Float32Array.from(x.data));
    const p = storage(device, 'layer/projection', N * stride);
    const viewBuffers = [...this.columns.views.keys()].map((name) => ({
      name,
      buffer: storage(device, `layer/view_${name}`, N * C),
    }));
    const lrBuffer = this.columns.lr === undefined ? undefined : storage(device, 'layer/lr', N * H);
    const ruleBuffers = [...this.columns.ruleGates.keys()].map((name) => ({
      name,
      buffer: storage(device, `layer/rule_${name}`, N * H),
    }));
    const transient = [
      xBuffer,
      ...viewBuffers.map((v) => v.buffer),
      ...(lrBuffer ? [lrBuffer] : []),
      ...ruleBuffers.map((r) => r.buffer),
    ];
    try {
      const batch = this.kernels.batch();
      batch.matmul(xBuffer, this.buffers.stacked, p, N, stride, C);
      for (const { name, buffer } of viewBuffers) {
        const column = this.columns.views.get(name)!;
        batch.splitRope(p, this.buffers.cos, this.buffers.sin, buffer, {
          B,
          T,
          H,
          D,
          stride,
          column,
          rotate: ROTATED.has(name),
          offset,
          K,
        });
      }
      if (lrBuffer)
        batch.lrGate(p, this.buffers.lrBias, lrBuffer, {
          B,
          T,
          H,
          stride,
          column: this.columns.lr!,
          scale: this.config.baseLr / D,
        });
      for (const { name, buffer } of ruleBuffers)
        batch.lrGate(p, this.buffers.ruleBiases.get(name)!, buffer, {
          B,
          T,
          H,
          stride,
          column: this.columns.ruleGates.get(name)!,
          scale: ruleGateScale(name, this.config.baseLr, D),
        });
      const perToken = [...(lrBuffer ? [lrBuffer] : []), ...ruleBuffers.map((r) => r.buffer)];
      const read = await batch.read([
        ...viewBuffers.map((v) => ({ buffer: v.buffer, floats: N * C })),
        ...perToken.map((buffer) => ({ buffer, floats: N * H })),
      ]);
      const views = new Map(
        viewBuffers.map((v, i) => [v.name, { shape: [B, H, T, D], data: Float64Array.from(read[i]) }]),
      );
      const gates = read.slice(viewBuffers.length).map((data) => ({ shape: [B, H, T], data: Float64Array.from(data) }));
      const lr = lrBuffer && gates.shift();
      const tokens = new Map(ruleBuffers.map((r, i) => [r.name, gates[i]]));
      return { views, lr, tokens, finish: (inner) => this.finish(p, inner, B, T), discard: () => p.destroy() };
    } catch (e) {
      p.destroy();
      throw e;
    } finally {
      for (const b of transient) b.destroy();
    }
  }

  private async finish(p: GPUBuffer, inner: Tensor, B: number, T: number): Promise<Tensor> {
    const { device } = this.ctx;
    const { width: C, heads: H, headDim: D } = this.config;
    const N = B * T;
    const innerBuffer = uploadF32(device, 'layer/inner', Float32Array.from(inner.data));
    const y = storage(device, 'layer/normed', N * C);
    const out = storage(device, 'layer/out', N * C);
    try {
      const batch = this.kernels.batch();
      batch.postNorm(innerBuffer, p, this.buffers.normWeight, this.buffers.normBias, y, {
        B,
        T,
        H,
        D,
        stride: this.columns.total,
        gateColumn: this.columns.gate,
        eps: POST_NORM_EPS,
      });
      batch.matmul(y, this.buffers.oProj, out, N, C, C);
      const [result] = await batch.read([{ buffer: out, floats: N * C }]);
      return { shape: [B, T, C], data: Float64Array.from(result) };
    } finally {
      for (const b of [p, innerBuffer, y, out]) b.destroy();
    }
  }

  destroy(): void {
    const { ruleBiases, ...fixed } = this.buffers;
    for (const b of [...Object.values(fixed), ...ruleBiases.values()]) b.destroy();
  }

  private checkSize(what: string, floats: number): void {
    const limit = deviceLimits(this.ctx.device).maxStorageBufferBindingSize;
    if (floats * 4 > limit)
      throw new DeviceLimitError(
        `${what} needs ${floats * 4} bytes; the adapter binds at most ${limit}: run fewer tokens per call`,
      );
  }
}

function storage(device: GPUDevice, label: string, floats: number): GPUBuffer {
  return device.createBuffer({
    label,
    size: Math.max(16, floats * 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
}

function uploadF32(device: GPUDevice, label: string, data: Float32Array<ArrayBuffer>): GPUBuffer {
  const buffer = storage(device, label, data.length);
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

export interface WebGPULayerOptions {
  /** The inner loop; the kernel's WebGPUInnerLoop when left out. */
  innerLoop?: InnerLoopBackend;
  context?: GPUContext;
}

/** A layer around a WGSL kernel rendered ahead of time (cli/link-layer.ts renders one for a compiled spec). */
export async function createWebGPULayer(
  kernel: WgslKernelManifest,
  config: LayerConfig,
  weights: LayerWeights,
  options: WebGPULayerOptions = {},
): Promise<SequenceLayer> {
  const ctx = options.context ?? (await getGPUDevice());
  // The inner loop first: it may not fit the adapter, and then no layer buffers are left behind.
  const innerLoop = options.innerLoop ?? (await WebGPUInnerLoop.fromManifest(kernel, ctx));
  const signature = kernel.signature;
  const parts = await WebGPUParts.create(signature, config, weights, ctx);
  return new SequenceLayer(signature, config, weights, parts, innerLoop);
}

export async function loadWebGPULayer(
  kernel: WgslKernelManifest,
  source: WeightsSource,
  options: LayerOptions & WebGPULayerOptions = {},
): Promise<SequenceLayer> {
  const { config, weights } = await loadLayerWeights(source, kernel.signature, options);
  return createWebGPULayer(kernel, config, weights, options);
}
