/**
 * Compute pipelines, built once per device and WGSL source and then reused: compiling a shader is
 * the slow part of a first dispatch, and a layer dispatches the same kernels for every token.
 */
import { SUBGROUP_WIDTH, type WgslShader, type WgslSource } from '../../core/manifest.ts';
import type { GPUContext } from './device.ts';
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

/** The shader of a kernel that runs on this context, and its subgroup width (0: the portable code). */
export interface ChosenShader extends WgslShader {
  subgroupWidth: number;
}

/** A kernel's subgroup variant where it has one and the context uses subgroups, else its portable code. */
export function shaderFor(ctx: GPUContext, source: WgslSource): ChosenShader {
  const width = source.subgroup ? ctx.subgroupWidth : 0;
  const shader = width ? source.subgroup! : source;
  return { code: shader.code, scratchFloats: shader.scratchFloats, subgroupWidth: width };
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
  /** The subgroup width a subgroup variant is built for; 0 for portable code. */
  subgroupWidth = 0,
): Promise<CachedPipeline> {
  let perDevice = cache.get(device);
  if (!perDevice) cache.set(device, (perDevice = new Map()));
  const key = `${bindings?.join(',') ?? 'auto'}\n${subgroupWidth}\n${code}`;
  let found = perDevice.get(key);
  if (!found) {
    found = build(device, code, label, bindings, subgroupWidth);
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
  subgroupWidth: number,
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
    compute: {
      module: shader.module,
      entryPoint: 'main',
      ...(subgroupWidth ? { constants: { [SUBGROUP_WIDTH]: subgroupWidth } } : {}),
    },
  });
  return { pipeline, messages: shader.messages };
}
