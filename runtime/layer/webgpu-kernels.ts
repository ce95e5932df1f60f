/**
 * The layer's own WGSL kernels (kernels/*.ts), compiled once per device, and a `KernelBatch`
 * that records their dispatches into one command buffer and reads results back.
 */
import { computePipeline, workgroupGrid } from '../webgpu/pipelines.ts';
import { LR_GATE_WGSL } from './kernels/lr-gate.ts';
import {
  MATMUL_SKINNY_WGSL,
  MATMUL_TILE_COLS,
  MATMUL_TILE_ROWS,
  MATMUL_WGSL,
  SKINNY_GROUP,
  SKINNY_MAX_ROWS,
} from './kernels/matmul.ts';
import { POST_NORM_WGSL } from './kernels/post-norm.ts';
import { SPLIT_ROPE_WGSL } from './kernels/split-rope.ts';

export const LAYER_SHADERS = {
  matmul: MATMUL_WGSL,
  matmul_skinny: MATMUL_SKINNY_WGSL,
  split_rope: SPLIT_ROPE_WGSL,
  lr_gate: LR_GATE_WGSL,
  post_norm: POST_NORM_WGSL,
} as const;

type KernelName = keyof typeof LAYER_SHADERS;

const ELEMENTWISE_GROUP = 64;

export class KernelWarning extends Error {}

export class LayerKernels {
  private constructor(
    readonly device: GPUDevice,
    private readonly pipelines: Record<KernelName, GPUComputePipeline>,
  ) {}

  /**
   * The kernels for a device; their pipelines are built once per device (runtime/webgpu/pipelines.ts),
   * since compiling takes seconds on a software adapter. A warning is an error, so a shader that
   * compiles with one never ships.
   */
  static async forDevice(device: GPUDevice): Promise<LayerKernels> {
    const entries = await Promise.all(
      (Object.keys(LAYER_SHADERS) as KernelName[]).map(async (name) => {
        const { pipeline, messages } = await computePipeline(device, LAYER_SHADERS[name], `layer/${name}.wgsl`);
        if (messages.length)
          throw new KernelWarning(`WGSL of layer/${name}.wgsl compiles with messages:\n${messages.join('\n')}`);
        return [name, pipeline] as const;
      }),
    );
    return new LayerKernels(device, Object.fromEntries(entries) as Record<KernelName, GPUComputePipeline>);
  }

  batch(): KernelBatch {
    return new KernelBatch(this.device, this.pipelines);
  }
}

/** Uniform fields in declaration order: u32 unless given as { f32 }. */
type UniformField = number | { f32: number };

/**
 * Dispatches recorded into one compute pass, then submitted with the copies `read` asks for.
 * Record and read without awaiting in between: the batch holds a validation error scope open
 * from its creation to `read`, so errors in recording (bind groups) surface there too. Uniform
 * buffers it makes are freed when it finishes.
 */
export class KernelBatch {
  private readonly encoder: GPUCommandEncoder;
  private readonly pass: GPUComputePassEncoder;
  private readonly temporary: GPUBuffer[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly pipelines: Record<KernelName, GPUComputePipeline>,
  ) {
    device.pushErrorScope('validation');
    this.encoder = device.createCommandEncoder();
    this.pass = this.encoder.beginComputePass();
  }

  /** y [rows, cols] = x [rows, inner] · W [cols, inner]ᵀ: tiled, or for a few rows (decode) one thread per output. */
  matmul(x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, rows: number, cols: number, inner: number): void {
    if (rows <= SKINNY_MAX_ROWS)
      this.dispatch('matmul_skinny', [rows, cols, inner, 0], [x, w, y], [Math.ceil(cols / SKINNY_GROUP), rows]);
    else
      this.dispatch(
        'matmul',
        [rows, cols, inner, 0],
        [x, w, y],
        [Math.ceil(cols / MATMUL_TILE_COLS), Math.ceil(rows / MATMUL_TILE_ROWS)],
      );
  }

  /** One view [B, H, T, D] from columns [column, column + H·D) of p; rotated when `rotate`. */
  splitRope(
    p: GPUBuffer,
    cos: GPUBuffer,
    sin: GPUBuffer,
    view: GPUBuffer,
    o: {
      B: number;
      T: number;
      H: number;
      D: number;
      stride: number;
      column: number;
      rotate: boolean;
      offset: number;
      K: number;
    },
  ): void {
    const pairs = (o.B * o.T * o.H * o.D) / 2;
    this.dispatch(
      'split_rope',
      [o.T, o.H, o.D, o.stride, o.column, o.rotate ? 1 : 0, o.offset, o.K, pairs, 0, 0, 0],
      [p, cos, sin, view],
      workgroupGrid(Math.ceil(pairs / ELEMENTWISE_GROUP)),
    );
  }

  /** lr [B, H, T] = scale · σ(p[:, column + h] + bias[h]). */
  lrGate(
    p: GPUBuffer,
    bias: GPUBuffer,
    lr: GPUBuffer,
    o: { B: number; T: number; H: number; stride: number; column: number; scale: number },
  ): void {
    const count = o.B * o.T * o.H;
    this.dispatch(
      'lr_gate',
      [o.T, o.H, o.stride, o.column, count, { f32: o.scale }, 0, 0],
      [p, bias, lr],
      workgroupGrid(Math.ceil(count / ELEMENTWISE_GROUP)),
    );
  }

  /** y [B·T, C] = LayerNorm(heads joined) (· gelu_tanh(gate columns of p)). */
  postNorm(
    inner: GPUBuffer,
    p: GPUBuffer,
    weight: GPUBuffer,
    bias: GPUBuffer,
    y: GPUBuffer,
    o: { B: number; T: number; H: number; D: number; stride: number; gateColumn: number | undefined; eps: number },
  ): void {
    const rows = o.B * o.T;
    const fields = [
      o.T,
      o.H,
      o.D,
      o.H * o.D,
      o.stride,
      o.gateColumn ?? 0,
      o.gateColumn === undefined ? 0 : 1,
      rows,
      { f32: o.eps },
      0,
      0,
      0,
    ];
    this.dispatch('post_norm', fields, [inner, p, weight, bias, y], workgroupGrid(rows));
  }

  /** Submits everything recorded and returns the given buffers' first `floats` values each. */
  async read(sources: { buffer: GPUBuffer; floats: number }[]): Promise<Float32Array[]> {
    this.pass.end();
    const targets = sources.map((s) => {
      const target = this.device.createBuffer({
        size: Math.max(4, s.floats * 4),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      if (s.floats) this.encoder.copyBufferToBuffer(s.buffer, 0, target, 0, s.floats * 4);
      return target;
    });
    this.device.queue.submit([this.encoder.finish()]);
    const error = await this.device.popErrorScope();
    try {
      if (error) throw new Error(`WebGPU rejected the layer kernels' dispatch: ${error.message}`);
      await Promise.all(targets.map((t) => t.mapAsync(GPUMapMode.READ)));
      return targets.map((t, i) => new Float32Array(t.getMappedRange().slice(0, sources[i].floats * 4)));
    } finally {
      for (const b of [...targets, ...this.temporary]) b.destroy();
    }
  }

  private dispatch(name: KernelName, fields: UniformField[], buffers: GPUBuffer[], [x, y]: [number, number]): void {
    const uniform = this.uniform(fields);
    const pipeline = this.pipelines[name];
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [uniform, ...buffers].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y);
  }

  private uniform(fields: UniformField[]): GPUBuffer {
    const bytes = new ArrayBuffer(Math.ceil((fields.length * 4) / 16) * 16);
    const u32 = new Uint32Array(bytes);
    const f32 = new Float32Array(bytes);
    fields.forEach((f, i) => (typeof f === 'number' ? (u32[i] = f) : (f32[i] = f.f32)));
    const buffer = this.device.createBuffer({
      size: bytes.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.device.queue.writeBuffer(buffer, 0, bytes);
    this.temporary.push(buffer);
    return buffer;
  }
}
