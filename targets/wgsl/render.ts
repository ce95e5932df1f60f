/** The WGSL renderer: a scheduled inner-loop kernel as a WGSL compute shader. */
import type { ChunkProgram } from '../../compiler/dualform/derive.ts';
import { type Compiled, variantOf } from '../../compiler/pipeline.ts';
import type { ScheduledKernel, TargetLimits } from '../../compiler/schedule/kernel.ts';
import { schedule } from '../../compiler/schedule/schedule.ts';
import type { WgslKernelManifest, WgslSource } from '../../core/manifest.ts';
import { add, mul } from '../../compiler/kernel/affine.ts';
import { type Expr, type Kernel, int, uniform } from '../../compiler/kernel/ir.ts';
import { lowerKernel } from '../../compiler/kernel/lower.ts';
import { lowerCheckpointingKernel } from '../../compiler/kernel/checkpoint.ts';
import { Lines } from '../clike/lines.ts';
import { type Memory, Printer, SCRATCH_ARRAY } from '../clike/print.ts';
import { wgsl } from './dialect.ts';
import { sourceOf, wgslModule, wgslVariants } from './entry.ts';
import { type Layout, layoutOf, regionOf, UNIFORM_FIELDS } from '../../core/packing.ts';
import { commentText } from '../text.ts';

/** WebGPU's default limits: what any adapter offers. */
export const WEBGPU_DEFAULT_LIMITS: TargetLimits = { workgroupBytes: 16384, invocations: 256 };

export interface WgslKernel extends WgslSource {
  kernel: ScheduledKernel;
  layout: Layout;
}

/** The buffer a forward that saves checkpoints writes them to, [C, B·H, carried floats]. */
export const CHECKPOINT_ARRAY = 'checkpoints';

/** Where a port's elements live in the packed buffers (core/packing.ts). */
export function portAccess(layout: Layout): Memory['port'] {
  const at = (array: string, base: Expr, index: Expr) => ({ array, index: add(base, index) });
  return (port, index) => {
    const state = port.io === 'in' ? 'state_in' : 'state_out';
    switch (port.role) {
      case 'view':
      case 'rate':
      case 'state-rate':
      case 'decay':
      case 'momentum':
        return at('tokens', mul(uniform('BHT'), regionOf(layout.tokens, port).prefix), index);
      case 'scale':
        return { array: 'weights', index };
      case 'param':
        return at('weights', add(int(layout.scale), mul(uniform('H'), regionOf(layout.params, port).prefix)), index);
      case 'state':
        return at(state, mul(uniform('BH'), regionOf(layout.states, port).prefix), index);
      case 'accum':
        return at(state, mul(uniform('BH'), regionOf(layout.accums, port).prefix), index);
      case 'opt':
        return at(state, mul(uniform('BH'), regionOf(layout.opts, port).prefix), index);
      case 'output':
        return { array: 'out', index };
      case 'checkpoint':
        return { array: CHECKPOINT_ARRAY, index };
    }
  };
}

/**
 * One variant's kernel (the compilation's prefill program unless `chunk` says otherwise); with
 * `checkpoints`, the kernel also saves what each chunk starts from, for the backward. `code` runs
 * on any adapter; `subgroup`, where the kernel has row sums to split, uses subgroup lanes.
 */
export function renderWgsl(
  compiled: Compiled,
  limits: TargetLimits = WEBGPU_DEFAULT_LIMITS,
  chunk: ChunkProgram = compiled.chunk,
  checkpoints = false,
): WgslKernel {
  const layout = layoutOf(compiled.signature);
  const lower = checkpoints ? lowerCheckpointingKernel : lowerKernel;
  const { kernel, source } = wgslVariants(
    limits,
    (l) => schedule(chunk, l),
    (k, features) => {
      const lowered = lower(k, compiled.signature, compiled.text.split('\n'), features);
      return { lowered, code: moduleOf(compiled, k, layout, lowered, checkpoints) };
    },
  );
  return { ...source, kernel, layout };
}

function moduleOf(
  compiled: Compiled,
  kernel: ScheduledKernel,
  layout: Layout,
  lowered: Kernel,
  checkpoints: boolean,
): string {
  const memory: Memory = { uniform: (n) => `u.${n}`, port: portAccess(layout) };
  const body = new Lines();
  new Printer(wgsl, memory).kernel(lowered, body);
  const L = compiled.layer;
  const declarations = [
    `struct Uniforms { ${UNIFORM_FIELDS.map((f) => `${f}: u32`).join(', ')} }`,
    '',
    '@group(0) @binding(0) var<uniform> u: Uniforms;',
    `@group(0) @binding(1) var<storage, read> tokens: array<f32>; // ${layout.tokens.map((t) => t.name).join(', ')}: [B, H, T, ...] each`,
    `@group(0) @binding(2) var<storage, read> weights: array<f32>; // ${[layout.scale ? 'scale [K]' : '', ...layout.params.map((p) => `${p.name} [H, ...]`)].filter(Boolean).join(', ') || '(unused)'}`,
    `@group(0) @binding(3) var<storage, read> state_in: array<f32>; // states, ${layout.opts.length ? 'accumulators, then optimizer states' : 'then accumulators'}: [B, H, ...] each`,
    '@group(0) @binding(4) var<storage, read_write> out: array<f32>; // output: [B, H, T, ...]',
    '@group(0) @binding(5) var<storage, read_write> state_out: array<f32>; // as state_in',
  ];
  if (kernel.scratchFloats > 0)
    declarations.push(
      `@group(0) @binding(6) var<storage, read_write> ${SCRATCH_ARRAY}: array<f32>; // ${kernel.scratchFloats} floats per workgroup`,
    );
  if (checkpoints)
    declarations.push(
      `@group(0) @binding(${kernel.scratchFloats > 0 ? 7 : 6}) var<storage, read_write> ${CHECKPOINT_ARRAY}: array<f32>; // [C chunks, B, H, carried floats]`,
    );
  const comments = [
    `// Generated by tttc from ${commentText(compiled.file)}: the fused mini-batch kernel of ${L.name}.`,
    `// One workgroup per (sequence, head) walks the mini-batches (K = ${compiled.chunk.K}) in order.`,
    `// Forms: ${compiled.chunk.forms.map((f) => `${f.state} ${f.form}`).join(', ')}.`,
    `// On chip: ${kernel.workgroupFloats * 4} bytes; scratch per workgroup: ${kernel.scratchFloats * 4} bytes.`,
  ];
  return wgslModule({ comments, declarations }, lowered, body);
}

/** The kernel with what the runtime needs to run it without the compiler. */
export function wgslManifest(compiled: Compiled, limits: TargetLimits = WEBGPU_DEFAULT_LIMITS): WgslKernelManifest {
  const rendered = renderWgsl(compiled, limits);
  const manifest: WgslKernelManifest = {
    signature: compiled.signature,
    ...sourceOf(rendered),
    layout: rendered.layout,
    scheduledFor: { workgroupBytes: limits.workgroupBytes, invocations: limits.invocations },
  };
  const variant = variantOf(compiled, 'decode');
  if (variant) {
    manifest.decode = sourceOf(renderWgsl(compiled, limits, variant.chunk));
  }
  return manifest;
}
