/**
 * The tensors of one CUDA kernel call, in order: each becomes a kernel parameter, a field of the
 * launcher's argument struct and an argument of the PyTorch wrapper, all spelled from this list
 * so they cannot disagree.
 */
import type { Compiled } from '../../compiler/pipeline.ts';
import type { ScheduledKernel } from '../../compiler/schedule/kernel.ts';
import { size } from '../../compiler/ir/ir.ts';

export type Role = 'view' | 'lr' | 'scale' | 'param' | 'state' | 'accum' | 'output' | 'state_out' | 'accum_out';

/** The leading, call-dependent axes of a tensor. */
export type Axis = 'B' | 'H' | 'T';

export interface KernelTensor {
  role: Role;
  /** The name in the `run` convention's dictionaries: a view, param or state name; `lr`, `scale`, `output`. */
  name: string;
  /** The C identifier: `view_q`, `param_gamma`, `state_W1`, `accum_out_W1`, ... */
  field: string;
  lead: readonly Axis[];
  /** Shape after the leading axes. */
  shape: readonly number[];
  written: boolean;
}

export function kernelTensors(compiled: Compiled, kernel: ScheduledKernel): KernelTensor[] {
  const L = compiled.layer;
  const out: KernelTensor[] = [];
  const add = (role: Role, name: string, field: string, lead: Axis[], shape: readonly number[]) =>
    out.push({ role, name, field, lead, shape, written: role === 'output' || role.endsWith('_out') });
  for (const v of L.views) add('view', v.name, `view_${v.name}`, ['B', 'H', 'T'], v.shape);
  if (L.update.lr.kind === 'token') add('lr', 'lr', 'lr', ['B', 'H', 'T'], []);
  if (L.update.scale.kind === 'position') add('scale', 'scale', 'scale', [], [compiled.chunk.K]);
  for (const p of L.params) add('param', p.name, `param_${p.name}`, ['H'], p.shape);
  for (const s of L.states) add('state', s.name, `state_${s.name}`, ['B', 'H'], s.shape);
  for (const s of L.states) add('accum', s.name, `accum_${s.name}`, ['B', 'H'], s.shape);
  add('output', 'output', 'output', ['B', 'H', 'T'], outputShape(kernel));
  for (const s of L.states) add('state_out', s.name, `state_out_${s.name}`, ['B', 'H'], s.shape);
  for (const s of L.states) add('accum_out', s.name, `accum_out_${s.name}`, ['B', 'H'], s.shape);
  return out;
}

/** The output's per-token shape. */
export function outputShape(kernel: ScheduledKernel): readonly number[] {
  return kernel.program.nodes[kernel.program.outputs[0].node].shape.slice(1);
}

/** `[B, H, T, 64]`, for comments and messages. */
export const showTensorShape = (t: KernelTensor) => `[${[...t.lead, ...t.shape].join(', ')}]`;

/** The tensor's element count as a C expression of the call's `B`, `H`, `T` (read from `args`). */
export function elementCount(t: KernelTensor, args: string): string {
  // The cast first, so the whole product is in size_t.
  const n = size(t.shape);
  const factors = [...t.lead.map((a) => `${args}${a}`), ...(n > 1 || t.lead.length === 0 ? [String(n)] : [])];
  return `(size_t)${factors.join(' * ')}`;
}
