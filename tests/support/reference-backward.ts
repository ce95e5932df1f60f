/** A backward case for a kernel test: random inputs and cotangents, and the f64 reference's answer. */
import { deriveChunkBackward } from '../../compiler/backward/derive.ts';
import type { Precision } from '../../compiler/ir/execute.ts';
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
import { nudged, worst } from './bf16-model.ts';
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
  const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs));
  const r = rng(seed);
  const ct = new Map(
    [...outputs].map(([n, t]): [string, Tensor] => [n, { shape: t.shape, data: normals(r, t.data.length) }]),
  );
  return {
    named,
    inputs,
    cotangents: innerLoopCotangents(c.signature, inputs, ct),
    want: referenceTraining(c, named, ct),
  };
}

/**
 * The reference's outputs and the gradient of every input, for inputs and output cotangents by
 * name, run at `precision` (compiler/ir/execute.ts: 'bf16' rounds each product's operands).
 */
export function referenceTraining(
  c: Compiled,
  named: Map<string, Tensor>,
  ct: Map<string, Tensor>,
  precision: Precision = 'f64',
): Map<string, Tensor> {
  const inputs = innerLoopInputs(c.signature, named);
  const checkpoints: Checkpoints = [];
  const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs, checkpoints, precision));
  const cotangents = innerLoopCotangents(c.signature, inputs, ct);
  const grads = runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents, precision);
  return new Map([...outputs, ...gradientTensors(grads, named)]);
}

/** tests/cuda-mma-kernels.test.ts derives it: f32 summation order and one flipped bf16 rounding. */
export const MODEL_TOL = 2 ** -11;

/**
 * The reference's outputs and gradients with bf16 product operands (the model a bf16 kernel is
 * held to), e_flip (the model's own change when inputs and cotangents move by one f32 ulp), and
 * the bound a bf16 kernel must be within of the model: MODEL_TOL + 4 e_flip, as
 * tests/cuda-mma-kernels.test.ts derives it.
 */
export function bf16TrainingModel(
  c: Compiled,
  named: Map<string, Tensor>,
  ct: Map<string, Tensor>,
): { model: Map<string, Tensor>; eFlip: number; bound: number } {
  const model = referenceTraining(c, named, ct, 'bf16');
  const nudgedModel = referenceTraining(
    c,
    nudged(named, (n) => n === 'start'),
    nudged(ct),
    'bf16',
  );
  const eFlip = worst(nudgedModel, model);
  return { model, eFlip, bound: MODEL_TOL + 4 * eFlip };
}
