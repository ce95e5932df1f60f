/**
 * The tensors of one CUDA kernel call are the ports of the kernel signature, in its order: each
 * becomes a kernel parameter, a field of the launcher's argument struct and an argument of the
 * PyTorch wrapper, all spelt by core/mangle.ts so they cannot disagree.
 */
import { backwardSignature, checkpointingSignature } from '../../compiler/backward/signature.ts';
import { size } from '../../core/shape.ts';
import { allPorts, elementBytes, type Io, type KernelSignature, type Port, withIo } from '../../core/signature.ts';
import { identifier } from '../../core/mangle.ts';

/** The tensors of the fused backward's two kernels, each in parameter order. */
export interface TrainingTensors {
  /** The forward that also saves its checkpoints. */
  checkpoints: Port[];
  /** The backward from those checkpoints. */
  backward: Port[];
}

/**
 * The training kernels' tensors as `io` stores them (core/signature.ts `withIo`): under bf16 I/O the
 * views, the output, the output's cotangent and the views' gradients are bf16. The kernels, the
 * launcher, its header, the PyTorch binding and the CPU runtime all take them from here.
 */
export const trainingTensors = (sig: KernelSignature, io: Io): TrainingTensors => ({
  checkpoints: withIo(allPorts(checkpointingSignature(sig)), io),
  backward: withIo(allPorts(backwardSignature(sig)), io),
});

/** What a port holds, for the header's field comments. */
export function portNote(p: Port): string {
  // A backward's cotangent of an output and gradient of an input, named by that tensor's field.
  if (p.grad) {
    const of = identifier({ ...p, grad: undefined, io: p.io === 'in' ? 'out' : 'in' });
    return p.io === 'in' ? `cotangent of ${of}` : `gradient of ${of}`;
  }
  if (p.io === 'out')
    return (
      {
        state: 'state after the call',
        accum: 'accumulator after the call',
        opt: 'optimizer state after the call',
        checkpoint: 'what each chunk started from, for the backward',
      }[p.role as string] ?? 'output, one row per token'
    );
  return {
    view: 'per-token input',
    rate: 'per-token learning rate',
    scale: 'per-position scale, shared by every sequence and head',
    param: 'per-head parameter',
    state: 'state before the call',
    accum: 'accumulator before the call: zeros for a new sequence',
    output: 'output, one row per token',
    'state-rate': "the state's own per-token learning rate",
    decay: 'per-token decay (retention), positive',
    momentum: 'per-token momentum, positive',
    opt: 'optimizer state before the call: zeros for a new sequence',
    checkpoint: 'what each chunk started from, saved by the forward',
  }[p.role];
}

/**
 * The element type of a tensor's field in the C header: float, or the bits of a bf16 (`uint16_t`,
 * so the header stays plain C; the launcher passes them to the kernel as `__nv_bfloat16`).
 */
export const fieldElement = (p: Port): string => (p.bf16 ? 'uint16_t' : 'float');

/** The generated files' note on bf16 I/O, when the tensor list stores some tensors as bf16. */
export const ioNote = (tensors: readonly Port[]): string =>
  !tensors.some((t) => t.bf16)
    ? ''
    : tensors.some((t) => t.bf16 && t.grad)
      ? ', bf16 views, output and their gradients in global memory'
      : ', bf16 views and output in global memory';

/** The launcher's count of the chunks a call walks (the checkpoints' leading axis), computed from `T` and `start`. */
export const CHUNKS = 'chunks';

/** The port's element count as a C expression of the call's `B`, `H`, `T` (read from `args`). */
export function elementCount(p: Port, args: string): string {
  // The cast first, so the whole product is in size_t.
  const n = size(p.shape);
  const lead = p.lead.map((a) => (a === 'C' ? CHUNKS : `${args}${a}`));
  const factors = [...lead, ...(n > 1 || p.lead.length === 0 ? [String(n)] : [])];
  return `(size_t)${factors.join(' * ')}`;
}

/**
 * Bytes one (sequence, head) of a call reads and writes in global memory per token: its tensors
 * with a token axis (views, rates, a rule's per-token inputs, the output; a backward's cotangent of
 * the output and gradients of the per-token inputs), each element as stored. States, params,
 * accumulators and checkpoints are read and written once per call or chunk, not per token.
 */
export function bytesPerToken(tensors: readonly Port[]): { read: number; written: number } {
  let read = 0;
  let written = 0;
  for (const p of tensors.filter((t) => t.lead.includes('T'))) {
    const bytes = size(p.shape) * elementBytes(p);
    if (p.io === 'in') read += bytes;
    else written += bytes;
  }
  return { read, written };
}
