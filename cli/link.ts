/**
 * Links compiled specs to the runtime: the runtime knows kernel signatures and manifests only, so
 * rendering a kernel for an adapter, or running the f64 reference executor as an inner loop,
 * happens here, above both.
 */
import type { Compiled } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import type { WgslKernelManifest } from '../core/manifest.ts';
import type { LayerConfig } from '../runtime/layer/config.ts';
import type { InnerLoopBackend, SequenceLayer } from '../runtime/layer/layer.ts';
import { createReferenceLayer } from '../runtime/layer/reference-layer.ts';
import { createWebGPULayer, type WebGPULayerOptions } from '../runtime/layer/webgpu-layer.ts';
import {
  type LayerOptions,
  type LayerWeights,
  loadLayerWeights,
  type WeightsSource,
} from '../runtime/layer/weights.ts';
import { deviceLimits, type GPUContext, getGPUDevice } from '../runtime/webgpu/device.ts';
import { schedulingLimits, WebGPUInnerLoop } from '../runtime/webgpu/inner-loop.ts';
import { wgslManifest } from '../targets/wgsl/render.ts';

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

/** The whole layer in f64; its inner loop the reference executor unless another is given. */
export function referenceLayer(
  compiled: Compiled,
  config: LayerConfig,
  weights: LayerWeights,
  innerLoop: InnerLoopBackend = referenceInnerLoop(compiled),
): SequenceLayer {
  return createReferenceLayer(compiled.signature, config, weights, innerLoop);
}

export async function loadReferenceLayerOf(
  compiled: Compiled,
  source: WeightsSource,
  options: LayerOptions & { innerLoop?: InnerLoopBackend } = {},
): Promise<SequenceLayer> {
  const { config, weights } = await loadLayerWeights(source, compiled.signature, options);
  return referenceLayer(compiled, config, weights, options.innerLoop);
}

/** The whole layer on WebGPU, its kernel rendered for the adapter. */
export async function webgpuLayer(
  compiled: Compiled,
  config: LayerConfig,
  weights: LayerWeights,
  options: WebGPULayerOptions = {},
): Promise<SequenceLayer> {
  const context = options.context ?? (await getGPUDevice());
  return createWebGPULayer(await webgpuManifest(compiled, context), config, weights, { ...options, context });
}

export async function loadWebGPULayerOf(
  compiled: Compiled,
  source: WeightsSource,
  options: LayerOptions & WebGPULayerOptions = {},
): Promise<SequenceLayer> {
  const { config, weights } = await loadLayerWeights(source, compiled.signature, options);
  return webgpuLayer(compiled, config, weights, options);
}
