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

/** WebGPU's per-axis limit on workgroups in a dispatch. */
const MAX_GROUPS_PER_AXIS = 65535;

/** A workgroup count as an (x, y) grid within the per-axis limit; kernels rebuild the index as x + y · groups_x. */
export function workgroupGrid(groups: number): [number, number] {
  const x = Math.max(1, Math.min(groups, MAX_GROUPS_PER_AXIS));
  return [x, Math.ceil(groups / x)];
}

/**
 * The pipeline for `code` with an explicit layout of one bind group whose bindings have the given
 * types, in binding order (an 'auto' layout would drop bindings a kernel happens not to read), or
 * with an 'auto' layout when no bindings are given.
 */
export function computePipeline(
  device: GPUDevice,
  code: string,
  label: string,
  bindings?: readonly GPUBufferBindingType[],
): Promise<CachedPipeline> {
  let perDevice = cache.get(device);
  if (!perDevice) cache.set(device, (perDevice = new Map()));
  const key = `${bindings?.join(',') ?? 'auto'}\n${code}`;
  let found = perDevice.get(key);
  if (!found) {
    found = build(device, code, label, bindings);
    found.catch(() => perDevice.delete(key));
    perDevice.set(key, found);
  }
  return found;
}

async function build(
  device: GPUDevice,
  code: string,
  label: string,
  bindings: readonly GPUBufferBindingType[] | undefined,
): Promise<CachedPipeline> {
  const shader = await compileShader(device, code, label);
  const layout = bindings
    ? device.createPipelineLayout({
        bindGroupLayouts: [
          device.createBindGroupLayout({
            entries: bindings.map((type, binding) => ({
              binding,
              visibility: GPUShaderStage.COMPUTE,
              buffer: { type },
            })),
          }),
        ],
      })
    : 'auto';
  const pipeline = await device.createComputePipelineAsync({
    label,
    layout,
    compute: { module: shader.module, entryPoint: 'main' },
  });
  return { pipeline, messages: shader.messages };
}
