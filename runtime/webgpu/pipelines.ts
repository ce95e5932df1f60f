/**
 * Compute pipelines, built once per device and WGSL source and then reused: compiling a shader is
 * the slow part of a first dispatch, and a layer dispatches the same kernels for every token.
 */
import { compileShader } from './shader.ts';

export interface CachedPipeline {
  pipeline: GPUComputePipeline;
  /** Dawn's warnings and infos about the source (generated code is expected to have none). */
  messages: string[];
}

const cache = new WeakMap<GPUDevice, Map<string, Promise<CachedPipeline>>>();

/**
 * The pipeline for `code` with an explicit layout of one bind group whose bindings have the given
 * types, in binding order. (An 'auto' layout would drop bindings a kernel happens not to read.)
 */
export function computePipeline(device: GPUDevice, code: string, label: string, bindings: readonly GPUBufferBindingType[]): Promise<CachedPipeline> {
  let perDevice = cache.get(device);
  if (!perDevice) cache.set(device, (perDevice = new Map()));
  const key = `${bindings.join(',')}\n${code}`;
  let found = perDevice.get(key);
  if (!found) {
    found = build(device, code, label, bindings);
    found.catch(() => perDevice.delete(key));
    perDevice.set(key, found);
  }
  return found;
}

async function build(device: GPUDevice, code: string, label: string, bindings: readonly GPUBufferBindingType[]): Promise<CachedPipeline> {
  const shader = await compileShader(device, code, label);
  const bindGroupLayout = device.createBindGroupLayout({
    entries: bindings.map((type, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } })),
  });
  const layout = device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout] });
  const pipeline = await device.createComputePipelineAsync({ label, layout, compute: { module: shader.module, entryPoint: 'main' } });
  return { pipeline, messages: shader.messages };
}
