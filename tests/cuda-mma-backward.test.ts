/**
 * The training kernels with bf16 operands on tensor cores: the checkpointing forward and the fused
 * backward plan their products as the forward does (compiler/schedule/tensor-core-placement.ts
 * withTensorCores), run through cuda-cpu against the reference backward with bf16 product operands
 * (every value rounded to f32, each product's operands to bf16: compiler/ir/execute.ts) and against
 * the f64 reference backward, for outputs and the gradients of every input.
 *
 * Tolerance, as tests/cuda-mma-kernels.test.ts derives it for the forward: the kernels differ from
 * the bf16 model only by f32 summation order and by operands whose f32 value lands on the other
 * side of a bf16 rounding boundary than the model's. MODEL_TOL = 2^-11 covers the first with one
 * flipped product; e_flip, the model's own change when its inputs and cotangents move by one f32
 * ulp, measures how far later steps carry a flip. The kernels must be within MODEL_TOL + 4 e_flip
 * of the model, and then within e_model + that of the f64 reference.
 */
import { describe, expect, it } from 'vitest';
import { runReference } from '../compiler/reference/inner-loop.ts';
import type { Tensor } from '../core/tensor.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { cudaCpuBackwardProgram } from '../targets/cuda/cpu.ts';
import { worst } from './support/bf16-model.ts';
import { randomInputs } from './support/inputs.ts';
import { bf16TrainingModel, referenceTraining } from './support/reference-backward.ts';
import { normals, rng } from './support/random.ts';
import { compileExample } from './support/specs.ts';

/** Products that fill 16x8 tiles (K = 16 rows), a partial trailing mini-batch, carried accumulators. */
const SIZE = { D: 16, K: 16, B: 1, H: 2, T: 21, start: 3, accum: true, rates: 0.3 };
/** Tiles padded in rows (12 of 16) and contraction (24 of 32, 12 of 16). */
const ODD = { D: 24, K: 12, B: 1, H: 2, T: 29, start: 7, accum: true, rates: 0.3 };
const CASES = [
  { arch: 'sm_80', size: SIZE },
  { arch: 'sm_90', size: SIZE },
  { arch: 'sm_90', size: ODD },
];

describe.each(['ttt_linear.ttt', 'ttt_mlp.ttt'])('bf16 training kernels of %s on tensor cores', (spec) => {
  it.each(CASES)(
    '$arch, D=$size.D K=$size.K: every product of both kernels on tensor cores, within the bf16 bound of the references',
    async ({ arch, size }) => {
      const c = compileExample(spec, 'auto', { D: size.D, K: size.K });
      const options = { arch, dtype: 'bf16' } as const;
      const { kernels } = renderCudaBackward(c, options);
      for (const [which, k] of Object.entries(kernels)) {
        const products = [...k.buffers.keys()].filter((id) => k.program.nodes[id].op.kind === 'matmul');
        expect(products.length, which).toBeGreaterThan(0);
        for (const id of products) expect(k.tensorCores?.products.has(id), `${which} product %${id}`).toBe(true);
      }

      const named = randomInputs(c.chunk, { ...size, seed: 5 });
      const r = rng(6);
      const outs = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
      const ct = new Map(
        [...outs].map(([n, t]): [string, Tensor] => [n, { shape: t.shape, data: normals(r, t.data.length) }]),
      );
      const f64 = referenceTraining(c, named, ct, 'f64');
      const { model, eFlip, bound } = bf16TrainingModel(c, named, ct);
      const eModel = worst(model, f64);

      const loop = await CudaCpuBackward.create(cudaCpuBackwardProgram(c, options));
      const inputs = innerLoopInputs(c.signature, named);
      const got = await loop.run(inputs, innerLoopCotangents(c.signature, inputs, ct));
      const kernel = new Map([...innerLoopOutputTensors(got.outputs), ...gradientTensors(got.grads, named)]);
      const eKernel = worst(kernel, model);
      console.log(
        `${spec} ${arch} D=${size.D} K=${size.K} bf16 training kernels: ${eKernel.toExponential(1)} from the bf16 model, which is ${eModel.toExponential(1)} from f64 (e_flip ${eFlip.toExponential(1)})`,
      );
      expect(eKernel, `kernels vs the bf16-operand reference (e_model ${eModel}, e_flip ${eFlip})`).toBeLessThan(bound);
      expect(worst(kernel, f64)).toBeLessThan(eModel + bound);
      // The operands were rounded: the kernels are nearer the bf16 model than the f64 reference is.
      expect(eKernel).toBeLessThan(eModel / 4);
    },
  );
});
