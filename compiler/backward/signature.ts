/**
 * The signatures of the training kernels, each derived once from the forward's: the forward that
 * also saves what every chunk starts from (its checkpoints), and the backward kernel. The backward
 * reads the call's data inputs, the checkpoints and the cotangents of the call's outputs (ports
 * with `grad`, io `in`), and writes the gradient of every input (ports with `grad`, io `out`):
 * per-token inputs row by row, per-chunk ones (scale, params) per sequence-head for the host to
 * sum over sequences, and the carried ones (states, accumulators, optimizer states) per
 * sequence-head.
 */
import { layoutOf, stateFloats } from '../../core/packing.ts';
import type { KernelSignature, Port, Role } from '../../core/signature.ts';

/** What a chunk hands to the next: saved by the checkpointing forward, carried as cotangents by the backward. */
export const CARRIED_ROLES: ReadonlySet<Role> = new Set(['state', 'accum', 'opt']);

/** The checkpoints of a call: [C chunks, B, H, the carried floats packed as core/packing.ts packs them]. */
function checkpointPort(sig: KernelSignature, io: Port['io']): Port {
  return { role: 'checkpoint', name: 'checkpoint', io, lead: ['C', 'B', 'H'], shape: [stateFloats(layoutOf(sig))] };
}

const checkpointing = new WeakMap<KernelSignature, KernelSignature>();
const backward = new WeakMap<KernelSignature, KernelSignature>();

/** The forward's signature with one more output: the checkpoints. */
export function checkpointingSignature(sig: KernelSignature): KernelSignature {
  const known = checkpointing.get(sig);
  if (known) return known;
  const s = { ...sig, outputs: [...sig.outputs, checkpointPort(sig, 'out')] };
  checkpointing.set(sig, s);
  return s;
}

export function backwardSignature(sig: KernelSignature): KernelSignature {
  const known = backward.get(sig);
  if (known) return known;
  const data = sig.inputs.filter((p) => !CARRIED_ROLES.has(p.role));
  const carried = sig.inputs.filter((p) => CARRIED_ROLES.has(p.role));
  const cotangent = (p: Port): Port => ({ ...p, io: 'in', grad: true });
  // Gradients of what every chunk reads (scale, params) are summed per sequence-head on chip.
  const perChunk = (p: Port) => p.role === 'scale' || p.role === 'param';
  const gradient = (p: Port): Port => ({ ...p, io: 'out', grad: true, lead: perChunk(p) ? ['B', 'H'] : p.lead });
  const s: KernelSignature = {
    ...sig,
    inputs: [...data, checkpointPort(sig, 'in'), ...sig.outputs.map(cotangent)],
    outputs: [...data.map(gradient), ...carried.map(gradient)],
  };
  backward.set(sig, s);
  return s;
}
