/**
 * The backward of the inner loop on WebGPU: the forward kernel that also saves its checkpoints,
 * then the backward kernel that walks the chunks in reverse from them (targets/wgsl/backward.ts),
 * in one submission. Gradients summed over the chunks come back per sequence-head and are summed
 * over the sequences here: the scale's over every sequence and head, the params' over B.
 */
import type { WgslBackwardManifest } from '../../core/manifest.ts';
import { runKey } from '../../core/mangle.ts';
import { paramFloats, type Region, stateFloats, tokenFloats } from '../../core/packing.ts';
import { outputPort, type Port } from '../../core/signature.ts';
import type { Tensor } from '../../core/tensor.ts';
import { chunks } from '../../core/walk.ts';
import type { InnerLoopCotangents, InnerLoopGradients, InnerLoopInputs, InnerLoopOutputs } from '../inner-loop.ts';
import { deviceLimits, type GPUContext, getGPUDevice } from './device.ts';
import { callBuffers, LimitError } from './call-buffers.ts';
import { packStates, packTokens, packWeights } from './pack.ts';
import { type ChosenShader, computePipeline, shaderFor, workgroupGrid } from './pipelines.ts';

export interface BackwardResult {
  outputs: InnerLoopOutputs;
  grads: InnerLoopGradients;
}

/** Floats the checkpoints of a call take per (sequence, head): what each chunk starts from. */
export function checkpointFloats(manifest: WgslBackwardManifest, start: number, T: number): number {
  return chunks(start, T, manifest.signature.K, manifest.rows).length * stateFloats(manifest.layout);
}

/** A kernel's chosen shader (pipelines.ts shaderFor) and its pipeline. */
interface BuiltShader extends ChosenShader {
  pipeline: GPUComputePipeline;
}

export class WebGPUInnerLoopBackward {
  private constructor(
    readonly manifest: WgslBackwardManifest,
    readonly ctx: GPUContext,
    private readonly forward: BuiltShader,
    private readonly backward: BuiltShader,
    /** Dawn's warnings about the generated WGSL (expected to be none). */
    readonly warnings: string[],
  ) {}

  /** Lanes per row sum of the two kernels: a subgroup variant's width, or 0 for portable code. */
  get subgroupWidths(): { forward: number; backward: number } {
    return { forward: this.forward.subgroupWidth, backward: this.backward.subgroupWidth };
  }

  static async fromManifest(manifest: WgslBackwardManifest, ctx?: GPUContext): Promise<WebGPUInnerLoopBackward> {
    const context = ctx ?? (await getGPUDevice());
    const { device } = context;
    const limits = deviceLimits(device);
    const name = manifest.signature.layer;
    const { workgroupBytes, invocations } = manifest.scheduledFor;
    if (
      workgroupBytes > limits.maxComputeWorkgroupStorageSize ||
      invocations > limits.maxComputeInvocationsPerWorkgroup
    )
      throw new LimitError(
        `the ${name} backward kernels were scheduled for ${workgroupBytes} bytes of workgroup storage and ${invocations} invocations; the adapter offers ${limits.maxComputeWorkgroupStorageSize} and ${limits.maxComputeInvocationsPerWorkgroup}`,
      );
    const scratch = (floats: number): GPUBufferBindingType[] => (floats > 0 ? ['storage'] : []);
    const forward = shaderFor(context, manifest.forward);
    const backward = shaderFor(context, manifest.backward);
    const ro = 'read-only-storage' as const;
    const forwardBindings: GPUBufferBindingType[] = [
      'uniform',
      ro,
      ro,
      ro,
      'storage',
      'storage',
      ...scratch(forward.scratchFloats),
      'storage',
    ];
    const backwardBindings: GPUBufferBindingType[] = [
      'uniform',
      ro,
      ro,
      ro,
      ro,
      'storage',
      'storage',
      ...scratch(backward.scratchFloats),
    ];
    const most = Math.max(forwardBindings.length, backwardBindings.length) - 1;
    if (most > limits.maxStorageBuffersPerShaderStage)
      throw new LimitError(
        `the ${name} backward kernels need ${most} storage buffers per stage; the adapter allows ${limits.maxStorageBuffersPerShaderStage}`,
      );
    const [f, b] = await Promise.all([
      computePipeline(device, forward.code, `${name}.checkpoints.wgsl`, forwardBindings, forward.subgroupWidth),
      computePipeline(device, backward.code, `${name}.backward.wgsl`, backwardBindings, backward.subgroupWidth),
    ]);
    return new WebGPUInnerLoopBackward(
      manifest,
      context,
      { ...forward, pipeline: f.pipeline },
      { ...backward, pipeline: b.pipeline },
      [...f.messages, ...b.messages],
    );
  }

  /** The call and the gradients of its inputs; `poison` NaN-fills every buffer the kernels write first. */
  async run(
    inp: InnerLoopInputs,
    cotangents: InnerLoopCotangents,
    options: { poison?: boolean } = {},
  ): Promise<BackwardResult> {
    const { device } = this.ctx;
    device.pushErrorScope('validation');
    try {
      return await this.dispatch(inp, cotangents, options.poison ?? false);
    } finally {
      const error = await device.popErrorScope();
      if (error)
        throw new Error(`WebGPU rejected the ${this.manifest.signature.layer} backward dispatch: ${error.message}`);
    }
  }

  private async dispatch(inp: InnerLoopInputs, ct: InnerLoopCotangents, poison: boolean): Promise<BackwardResult> {
    const { device } = this.ctx;
    const { layout, signature } = this.manifest;
    const { B, H, T } = inp;
    const BH = B * H;
    const BHT = BH * T;
    const carriedFloats = stateFloats(layout);
    const outWidth = layout.outputWidth;

    const tokens = packTokens(layout, inp, outWidth);
    tokens.set(ct.output.data, BHT * tokenFloats(layout));
    const sums = layout.scale + paramFloats(layout);
    const sizes = {
      out: BHT * outWidth,
      stateOut: BH * carriedFloats,
      checkpoints: BH * checkpointFloats(this.manifest, inp.start, T),
      gradTokens: BHT * tokenFloats(layout),
      gradOut: BH * (carriedFloats + sums),
    };
    const { storage, upload, uniforms } = callBuffers(device);
    const written = (label: keyof typeof sizes) =>
      storage(label, sizes[label], GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    const [groupsX, groupsY] = workgroupGrid(BH);
    const uniformBuffer = uniforms({ B, H, T, start: inp.start });
    const scratchFloats = Math.max(this.forward.scratchFloats, this.backward.scratchFloats);
    const scratch =
      scratchFloats > 0 ? storage('scratch', BH * scratchFloats, 0, { count: BH, unit: 'sequence-head' }) : undefined;
    const tokenBuffer = upload('tokens', tokens);
    const weights = upload('weights', packWeights(layout, inp));
    const out = {
      out: written('out'),
      stateOut: written('stateOut'),
      checkpoints: written('checkpoints'),
      gradTokens: written('gradTokens'),
      gradOut: written('gradOut'),
    };
    const inputs = [uniformBuffer, tokenBuffer, weights];
    const forwardBuffers = [
      ...inputs,
      upload('state_in', packStates(layout, BH, inp)),
      out.out,
      out.stateOut,
      ...(this.forward.scratchFloats > 0 ? [scratch!] : []),
      out.checkpoints,
    ];
    const backwardBuffers = [
      ...inputs,
      upload('cotangents', packStates(layout, BH, ct)),
      out.checkpoints,
      out.gradTokens,
      out.gradOut,
      ...(this.backward.scratchFloats > 0 ? [scratch!] : []),
    ];
    if (poison)
      for (const b of Object.values(out)) device.queue.writeBuffer(b, 0, new Float32Array(b.size / 4).fill(Number.NaN));
    const encoder = device.createCommandEncoder();
    for (const [{ pipeline }, buffers] of [
      [this.forward, forwardBuffers],
      [this.backward, backwardBuffers],
    ] as const) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(
        0,
        device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
        }),
      );
      pass.dispatchWorkgroups(groupsX, groupsY);
      pass.end();
    }
    const read = (['out', 'stateOut', 'gradTokens', 'gradOut'] as const).map((k) => {
      const dst = device.createBuffer({
        size: Math.max(16, sizes[k] * 4),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      encoder.copyBufferToBuffer(out[k], 0, dst, 0, sizes[k] * 4);
      return dst;
    });
    device.queue.submit([encoder.finish()]);
    await Promise.all(read.map((b) => b.mapAsync(GPUMapMode.READ)));
    const [outData, stateOut, gradTokens, gradOut] = read.map((b, i) =>
      Float64Array.from(
        new Float32Array(
          b.getMappedRange().slice(0, [sizes.out, sizes.stateOut, sizes.gradTokens, sizes.gradOut][i] * 4),
        ),
      ),
    );
    for (const b of [...read, ...forwardBuffers, ...backwardBuffers]) b.destroy();

    const shapeOf = (r: Region): readonly number[] =>
      signature.inputs.find((p: Port) => p.role === r.role && p.name === r.name)!.shape;
    const carried = (data: Float64Array, list: readonly Region[]) =>
      new Map(
        list.map((r) => [
          r.name,
          { shape: [B, H, ...shapeOf(r)], data: data.slice(BH * r.prefix, BH * (r.prefix + r.width)) } as Tensor,
        ]),
      );
    const perToken = (r: Region): Tensor => ({
      shape: [B, H, T, ...shapeOf(r)],
      data: gradTokens.slice(BHT * r.prefix, BHT * (r.prefix + r.width)),
    });
    const sumsAt = BH * carriedFloats;
    const grads: InnerLoopGradients = {
      views: new Map(layout.tokens.filter((r) => r.role === 'view').map((r) => [r.name, perToken(r)])),
      params: new Map(
        layout.params.map((r) => {
          const data = new Float64Array(H * r.width);
          const at = sumsAt + BH * (layout.scale + r.prefix);
          for (let s = 0; s < BH; s++)
            for (let e = 0; e < r.width; e++) data[(s % H) * r.width + e] += gradOut[at + s * r.width + e];
          return [r.name, { shape: [H, ...shapeOf(r)], data }];
        }),
      ),
      states: carried(gradOut, layout.states),
      accums: carried(gradOut, layout.accums),
      tokens: new Map(
        layout.tokens.filter((r) => r.role !== 'view' && r.role !== 'rate').map((r) => [runKey(r), perToken(r)]),
      ),
      opts: carried(gradOut, layout.opts),
    };
    const rate = layout.tokens.find((r) => r.role === 'rate');
    if (rate) grads.lr = perToken(rate);
    if (layout.scale) {
      const data = new Float64Array(layout.scale);
      for (let s = 0; s < BH; s++)
        for (let k = 0; k < layout.scale; k++) data[k] += gradOut[sumsAt + s * layout.scale + k];
      grads.scale = { shape: [layout.scale], data };
    }
    const outputs: InnerLoopOutputs = {
      output: { shape: [B, H, T, ...outputPort(signature).shape], data: outData },
      states: carried(stateOut, layout.states),
      accums: carried(stateOut, layout.accums),
      ...(layout.opts.length ? { opts: carried(stateOut, layout.opts) } : {}),
    };
    return { outputs, grads };
  }
}
