/** Links compiled specs to the runtime's whole sequence layers (see link.ts). */
import type { Compiled } from '../compiler/pipeline.ts';
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
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { referenceInnerLoop, webgpuManifest } from './link.ts';

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
