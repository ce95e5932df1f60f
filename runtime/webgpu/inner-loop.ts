/**
 * The WebGPU backend of the inner loop: a WGSL kernel from its manifest (runtime/webgpu/manifest.ts),
 * its pipeline built once, the `run` convention's tensors packed into the kernel's buffers (see
 * core/packing.ts).
 */
import { statePorts, outputPort } from '../../core/signature.ts';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { InnerLoopInputs, InnerLoopOutputs } from '../inner-loop.ts';
import { callBuffers, LimitError } from './call-buffers.ts';
import { deviceLimits, type GPUContext, getGPUDevice, type KernelLimits } from './device.ts';
import type { WgslKernelManifest, WgslSource } from '../../core/manifest.ts';
import { packStates, packTokens, packWeights } from './pack.ts';
import { computePipeline, shaderFor, workgroupGrid } from './pipelines.ts';

/** Told the name and wall time in ms of each phase of a run. */
export type PhaseListener = (name: string, ms: number) => void;

export interface RunOptions {
  poison?: boolean;
  onPhase?: PhaseListener;
}

export { LimitError } from './call-buffers.ts';

/** The largest one-dimensional workgroup a device runs. */
const maxInvocations = (limits: KernelLimits) =>
  Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);

/** What a kernel for a device with these limits is scheduled for: 256 invocations at most, all its workgroup storage. */
export function schedulingLimits(limits: KernelLimits): WgslKernelManifest['scheduledFor'] {
  return { workgroupBytes: limits.maxComputeWorkgroupStorageSize, invocations: Math.min(256, maxInvocations(limits)) };
}

/** Throws a LimitError unless the device offers what the kernel was scheduled for. */
function checkLimits(manifest: WgslKernelManifest, limits: KernelLimits): void {
  const name = `the ${manifest.signature.layer} kernel`;
  const { workgroupBytes, invocations } = manifest.scheduledFor;
  const rerender = 'render it for this adapter instead (webgpuInnerLoop in cli/link.ts)';
  if (workgroupBytes > limits.maxComputeWorkgroupStorageSize) {
    throw new LimitError(
      `${name} was scheduled for ${workgroupBytes} bytes of workgroup storage; the adapter offers ${limits.maxComputeWorkgroupStorageSize}: ${rerender}`,
    );
  }
  if (invocations > maxInvocations(limits)) {
    throw new LimitError(
      `${name} was scheduled for ${invocations} invocations per workgroup; the adapter offers ${maxInvocations(limits)}: ${rerender}`,
    );
  }
  const shaders = [manifest, manifest.decode].flatMap((k) => (k ? [k, ...(k.subgroup ? [k.subgroup] : [])] : []));
  const buffers = shaders.some((k) => k.scratchFloats > 0) ? 6 : 5;
  if (buffers > limits.maxStorageBuffersPerShaderStage) {
    throw new LimitError(
      `${name} needs ${buffers} storage buffers per stage; the adapter allows ${limits.maxStorageBuffersPerShaderStage}`,
    );
  }
}

/** A built kernel: its pipeline and the global scratch each workgroup needs. */
interface Kernel {
  pipeline: GPUComputePipeline;
  scratchFloats: number;
  messages: string[];
  /** Lanes per row sum when the subgroup variant was built; 0 for the portable code. */
  subgroupWidth: number;
}

async function buildKernel(ctx: GPUContext, source: WgslSource, label: string): Promise<Kernel> {
  const shader = shaderFor(ctx, source);
  const bindings: GPUBufferBindingType[] = [
    'uniform',
    'read-only-storage',
    'read-only-storage',
    'read-only-storage',
    'storage',
    'storage',
  ];
  if (shader.scratchFloats > 0) bindings.push('storage');
  const { pipeline, messages } = await computePipeline(ctx.device, shader.code, label, bindings, shader.subgroupWidth);
  return { pipeline, scratchFloats: shader.scratchFloats, messages, subgroupWidth: shader.subgroupWidth };
}

export class WebGPUInnerLoop {
  /** The one-row kernel, built on the first one-token call: a prefill-only user never pays its compile. */
  private decode: Promise<Kernel> | undefined;
  private decodeMessages: string[] = [];

  private constructor(
    readonly manifest: WgslKernelManifest,
    readonly ctx: GPUContext,
    private readonly prefill: Kernel,
  ) {}

  /** Lanes per row sum of the prefill kernel: its subgroup variant's width, or 0 for its portable code. */
  get subgroupWidth(): number {
    return this.prefill.subgroupWidth;
  }

  /** Dawn's warnings about the generated WGSL of the kernels built so far (expected to be none). */
  get warnings(): string[] {
    return [...this.prefill.messages, ...this.decodeMessages];
  }

  /** Builds a kernel rendered ahead of time; a LimitError if the adapter offers less than it was scheduled for. */
  static async fromManifest(manifest: WgslKernelManifest, ctx?: GPUContext): Promise<WebGPUInnerLoop> {
    const context = ctx ?? (await getGPUDevice());
    checkLimits(manifest, deviceLimits(context.device));
    const name = manifest.signature.layer;
    const prefill = await buildKernel(context, manifest, `${name}.wgsl`);
    return new WebGPUInnerLoop(manifest, context, prefill);
  }

  /** The kernel for a call of T tokens: the one-row kernel for one token when the manifest has one. */
  private async kernelFor(T: number): Promise<Kernel> {
    const { decode } = this.manifest;
    if (T !== 1 || !decode) return this.prefill;
    this.decode ??= buildKernel(this.ctx, decode, `${this.manifest.signature.layer}.decode.wgsl`).then((kernel) => {
      this.decodeMessages = kernel.messages;
      return kernel;
    });
    return this.decode;
  }

  /**
   * Run the kernel; `poison` NaN-fills the output buffers first, so an element it never writes
   * shows. With `onPhase`, the upload, the kernels and the download are timed apart (each waits
   * for the queue, which a call without it does not).
   */
  async run(inp: InnerLoopInputs, options: RunOptions = {}): Promise<InnerLoopOutputs> {
    const { device } = this.ctx;
    device.pushErrorScope('validation');
    try {
      return await this.dispatch(inp, options.poison ?? false, options.onPhase);
    } finally {
      const error = await device.popErrorScope();
      if (error)
        throw new Error(`WebGPU rejected the ${this.manifest.signature.layer} kernel's dispatch: ${error.message}`);
    }
  }

  private async dispatch(inp: InnerLoopInputs, poison: boolean, onPhase?: PhaseListener): Promise<InnerLoopOutputs> {
    const { device } = this.ctx;
    let phaseStart = performance.now();
    const phase = async (name: string) => {
      if (!onPhase) return;
      await device.queue.onSubmittedWorkDone();
      const now = performance.now();
      onPhase(name, now - phaseStart);
      phaseStart = now;
    };
    const { layout, signature } = this.manifest;
    const { B, H, T } = inp;
    const kernel = await this.kernelFor(T);
    const { scratchFloats } = kernel;
    const BH = B * H;
    const BHT = BH * T;

    const tokens = packTokens(layout, inp);
    const weights = packWeights(layout, inp);
    const stateIn = packStates(layout, BH, inp);

    const { storage, upload, uniforms } = callBuffers(device);
    const outFloats = BHT * layout.outputWidth;
    const stateOutFloats = stateIn.length;
    const [groupsX, groupsY] = workgroupGrid(BH);

    const buffers = [
      uniforms({ B, H, T, start: inp.start }),
      upload('tokens', tokens),
      upload('weights', weights),
      upload('state_in', stateIn),
      storage('out', outFloats, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST),
      storage('state_out', stateOutFloats, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST),
      ...(scratchFloats > 0 ? [storage('scratch', BH * scratchFloats, 0, { count: BH, unit: 'sequence-head' })] : []),
    ];
    if (poison)
      for (const b of [buffers[4], buffers[5]])
        device.queue.writeBuffer(b, 0, new Float32Array(b.size / 4).fill(Number.NaN));
    const bindGroup = device.createBindGroup({
      layout: kernel.pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const readOut = device.createBuffer({
      size: Math.max(16, outFloats * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const readState = device.createBuffer({
      size: Math.max(16, stateOutFloats * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    await phase('upload');
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groupsX, groupsY);
    pass.end();
    // Timed, the kernels go alone in a submission; untimed, one submission also copies back.
    const copies = onPhase ? device.createCommandEncoder() : encoder;
    if (onPhase) device.queue.submit([encoder.finish()]);
    await phase('kernels');
    copies.copyBufferToBuffer(buffers[4], 0, readOut, 0, outFloats * 4);
    copies.copyBufferToBuffer(buffers[5], 0, readState, 0, stateOutFloats * 4);
    device.queue.submit([copies.finish()]);
    await Promise.all([readOut.mapAsync(GPUMapMode.READ), readState.mapAsync(GPUMapMode.READ)]);
    const out = new Float32Array(readOut.getMappedRange().slice(0, outFloats * 4));
    const stateOut = new Float32Array(readState.getMappedRange().slice(0, stateOutFloats * 4));
    for (const b of [...buffers, readOut, readState]) b.destroy();
    await phase('download');

    const unpack = (prefix: number, shape: readonly number[]): Tensor => ({
      shape: [B, H, ...shape],
      data: Float64Array.from(stateOut.subarray(BH * prefix, BH * (prefix + size(shape)))),
    });
    const shapeOf = new Map(statePorts(signature).map((s) => [s.name, s.shape]));
    return {
      output: { shape: [B, H, T, ...outputPort(signature).shape], data: Float64Array.from(out) },
      states: new Map(layout.states.map((r) => [r.name, unpack(r.prefix, shapeOf.get(r.name)!)])),
      accums: new Map(layout.accums.map((r) => [r.name, unpack(r.prefix, shapeOf.get(r.name)!)])),
      ...(layout.opts.length
        ? { opts: new Map(layout.opts.map((r) => [r.name, unpack(r.prefix, shapeOf.get(r.name)!)])) }
        : {}),
    };
  }
}
