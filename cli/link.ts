/**
 * Links compiled specs to the runtime's inner loops: the runtime knows kernel signatures and
 * manifests only, so rendering a kernel for an adapter, or running the f64 reference executor as
 * an inner loop, happens here, above both (whole layers: link-layer.ts). Loads in a browser.
 */
import type { Compiled } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import type { WgslKernelManifest } from '../core/manifest.ts';
import type { InnerLoopBackend } from '../runtime/layer/layer.ts';
import { deviceLimits, type GPUContext, getGPUDevice } from '../runtime/webgpu/device.ts';
import { schedulingLimits, WebGPUInnerLoop } from '../runtime/webgpu/inner-loop.ts';
import { wgslManifest } from '../targets/wgsl/render.ts';
import { wgslBackwardManifest } from '../targets/wgsl/backward.ts';
import { WebGPUInnerLoopBackward } from '../runtime/webgpu/backward.ts';

/** The inner loop as the f64 reference executor runs it. */
export function referenceInnerLoop(compiled: Compiled): InnerLoopBackend {
  return { run: async (inputs) => runReference(compiled.chunk, inputs) };
}

/** The compiled spec's WGSL kernel rendered for this adapter's limits. */
export async function webgpuManifest(compiled: Compiled, ctx: GPUContext): Promise<WgslKernelManifest> {
  return wgslManifest(compiled, schedulingLimits(deviceLimits(ctx.device)));
}

/** The compiled spec's WGSL kernel rendered for this adapter's limits, then built. */
export async function webgpuInnerLoop(compiled: Compiled, ctx?: GPUContext): Promise<WebGPUInnerLoop> {
  const context = ctx ?? (await getGPUDevice());
  return WebGPUInnerLoop.fromManifest(await webgpuManifest(compiled, context), context);
}

/** The compiled spec's backward kernels (the checkpointing forward and the backward) for this adapter, built. */
export async function webgpuInnerLoopBackward(compiled: Compiled, ctx?: GPUContext): Promise<WebGPUInnerLoopBackward> {
  const context = ctx ?? (await getGPUDevice());
  const manifest = wgslBackwardManifest(compiled, schedulingLimits(deviceLimits(context.device)));
  return WebGPUInnerLoopBackward.fromManifest(manifest, context);
}
