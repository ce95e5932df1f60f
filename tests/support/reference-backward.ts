/** A backward case for a kernel test: random inputs and cotangents, and the f64 reference's answer. */
import { deriveChunkBackward } from '../../compiler/backward/derive.ts';
import type { Compiled } from '../../compiler/pipeline.ts';
import { runReferenceBackward } from '../../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../../compiler/reference/inner-loop.ts';
import type { Tensor } from '../../core/tensor.ts';
import {
  gradientTensors,
  type InnerLoopCotangents,
  type InnerLoopInputs,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../../runtime/inner-loop.ts';
import { type InputOptions, randomInputs } from './inputs.ts';
import { normals, rng } from './random.ts';

export interface BackwardCase {
  /** The inputs by name, as a safetensors file holds them (gradientTensors names their gradients). */
  named: Map<string, Tensor>;
  inputs: InnerLoopInputs;
  cotangents: InnerLoopCotangents;
  /** The reference's outputs and the gradient of every input. */
  want: Map<string, Tensor>;
}

/** Inputs for `call`, unit-normal cotangents of every output (seeded by `seed`), and the f64 reference's outputs and gradients. */
export function referenceBackward(c: Compiled, call: InputOptions, seed: number): BackwardCase {
  const named = randomInputs(c.chunk, call);
  const inputs = innerLoopInputs(c.signature, named);
  const checkpoints: Checkpoints = [];
  const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs, checkpoints));
  const r = rng(seed);
  const ct = new Map(
    [...outputs].map(([n, t]): [string, Tensor] => [n, { shape: t.shape, data: normals(r, t.data.length) }]),
  );
  const cotangents = innerLoopCotangents(c.signature, inputs, ct);
  const grads = runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents);
  return { named, inputs, cotangents, want: new Map([...outputs, ...gradientTensors(grads, named)]) };
}
