/**
 * The backward of the inner loop on the CPU through the generated CUDA (targets/cuda/backward.ts):
 * one launcher call runs the checkpointing forward and the backward kernel; gradients the kernel
 * sums per (sequence, head) are summed over the sequences here (the scale's over heads too).
 */
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import { chunks } from '../../core/walk.ts';
import type { InnerLoopCotangents, InnerLoopGradients, InnerLoopInputs, InnerLoopOutputs } from '../inner-loop.ts';
import { type Built, buildProgram, type CudaCpuMode } from './build.ts';
import { CudaCpuRunError, inputOf, outputsOf, runDriver, shapeOf } from './inner-loop.ts';
import type { CudaCpuProgram, CudaTensorField } from './program.ts';

function cotangentOf(t: CudaTensorField, ct: InnerLoopCotangents): Tensor | undefined {
  switch (t.of?.role) {
    case 'output':
      return ct.output;
    case 'state':
      return ct.states.get(t.of.name);
    case 'accum':
      return ct.accums.get(t.of.name);
    case 'opt':
      return ct.opts.get(t.of.name);
    default:
      return undefined;
  }
}

/** Sums a [B, H, ...] tensor over the leading `axes` (1: over B; 2: over B and H). */
function sumLeading(t: Tensor, axes: number): Tensor {
  const shape = t.shape.slice(axes);
  const n = size(shape);
  const data = new Float64Array(n);
  for (let i = 0; i < t.data.length; i++) data[i % n] += t.data[i];
  return { shape, data };
}

export class CudaCpuBackward {
  private constructor(
    readonly program: CudaCpuProgram,
    readonly mode: CudaCpuMode,
    readonly build: Built,
  ) {}

  static async create(program: CudaCpuProgram, mode: CudaCpuMode = 'fast'): Promise<CudaCpuBackward> {
    if (program.rows === undefined) throw new Error(`${program.source} is not a backward: it has no rows per chunk`);
    return new CudaCpuBackward(program, mode, await buildProgram(program, mode));
  }

  /** The call and the gradients of its inputs; every tensor the launcher writes starts as NaN. */
  async run(
    inputs: InnerLoopInputs,
    cotangents: InnerLoopCotangents,
  ): Promise<{ outputs: InnerLoopOutputs; grads: InnerLoopGradients }> {
    const count = chunks(inputs.start, inputs.T, this.program.signature.K, this.program.rows!).length;
    const written = await runDriver(
      this.program,
      this.mode,
      this.build,
      inputs,
      (t) => shapeOf(t, inputs, count),
      (t) => (t.role === 'cotangent' ? cotangentOf(t, cotangents) : inputOf(t, inputs)),
    );
    const grads: InnerLoopGradients = {
      views: new Map(),
      params: new Map(),
      states: new Map(),
      accums: new Map(),
      tokens: new Map(),
      opts: new Map(),
    };
    for (const [t, tensor] of written) {
      if (t.role !== 'gradient') continue;
      const { role, name } = t.of!;
      if (role === 'view') grads.views.set(name, tensor);
      else if (role === 'rate') grads.lr = tensor;
      else if (role === 'scale') grads.scale = sumLeading(tensor, 2);
      else if (role === 'param') grads.params.set(name, sumLeading(tensor, 1));
      else if (role === 'state') grads.states.set(name, tensor);
      else if (role === 'accum') grads.accums.set(name, tensor);
      else if (role === 'opt') grads.opts.set(name, tensor);
      else if (role === 'state-rate' || role === 'decay' || role === 'momentum') grads.tokens.set(t.name, tensor);
      else
        throw new CudaCpuRunError(
          `the launcher wrote a gradient of the ${role} ${name}, which a call has no input for`,
        );
    }
    return { outputs: outputsOf(written), grads };
  }
}
