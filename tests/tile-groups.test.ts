/**
 * Tensor-core tiles in groups (compiler/schedule/tensor-core-placement.ts inTileGroups, compiler/kernel/mma.ts):
 * a warp takes up to 4 output tiles of a product side by side, staging A's 16 rows and loading
 * their fragment once for all of them, with B's 8 columns staged for each. The block size and the
 * homes' slots are chosen with single tiles; the kernel kept then takes the largest group that
 * keeps its products on tensor cores and is as good a schedule.
 *
 * Checked:
 * - the schedule, over examples, sizes and block sizes: the grouped kernel keeps every product
 *   the single-tile kernel has on tensor cores and is no worse a schedule (blocks per SM, global
 *   memory, block barriers); its slices hold 16 rows of A and 8 of B per tile of its group, as
 *   large as the largest group a product takes; groups of 2 and of 4 both occur; a group whose
 *   slices take the room of an input's read-ahead is not kept;
 * - the kernels, run on the CPU at sizes where warps take 2 and 4 tiles: the prefill and both
 *   training kernels. bf16 within tests/cuda-mma-kernels.test.ts's bound of the reference with
 *   bf16 product operands (MODEL_TOL + 4 e_flip, derived there), and nearer that model than the
 *   f64 reference is; tf32x3 within the f32 kernels' tolerances of the f64 reference (1e-5
 *   forward, 1e-4 training; derived in tests/cuda-tf32x3.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { tokenRows, withPrefetch } from '../compiler/schedule/prefetch.ts';
import { allPorts, withIo } from '../core/signature.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import type { MmaOperands, ScheduledKernel } from '../compiler/schedule/kernel.ts';
import { betterSchedule } from '../compiler/schedule/layout.ts';
import { scheduleWithTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { groupOf, mmaTile, WARP_LANES } from '../compiler/schedule/tensor-cores.ts';
import type { Tensor } from '../core/tensor.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { cudaCpuBackwardProgram, cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { renderCuda, scheduleForward } from '../targets/cuda/render.ts';
import type { TargetOptions } from '../targets/target.ts';
import { worst } from './support/bf16-model.ts';
import { randomInputs } from './support/inputs.ts';
import { bf16TrainingModel, referenceTraining } from './support/reference-backward.ts';
import { normals, rng } from './support/random.ts';
import { compileExample } from './support/specs.ts';

const arch = archOf('sm_90');

describe('the groups the scheduler keeps', () => {
  const specs = ['ttt_linear.ttt', 'ttt_mlp.ttt', 'delta_rule.ttt', 'gated_linear.ttt'];
  const sizes = [16, 32, 64];
  const threads = [32, 64, 128, 256];

  /** The slices each warp stages: 16 rows of A, then 8 of B for each tile of the plan's group. */
  const sliceElements = (k: ScheduledKernel) => {
    const t = mmaTile(k.tensorCores!.operands);
    return (t.m + t.n * k.tensorCores!.groupTiles) * k.tensorCores!.rowStride;
  };

  it("keep the single-tile kernel's products, are no worse a schedule, and size the slices to the largest group", () => {
    const seen = new Set<number>();
    for (const spec of specs)
      for (const D of sizes)
        for (const invocations of threads) {
          const c = compileExample(spec, 'auto', { D, K: 16 });
          const operands: MmaOperands = 'bf16';
          const limits = { ...arch.limits, invocations };
          const single = scheduleWithTensorCores(c.chunk, limits, operands);
          const grouped = scheduleForward(c.chunk, arch, { dtype: 'bf16', threads: invocations });
          const at = `${spec} D=${D} ${invocations} threads`;
          expect(single.tensorCores?.groupTiles, at).toBe(1);
          expect([...grouped.tensorCores!.products.keys()], at).toEqual([...single.tensorCores!.products.keys()]);
          expect(betterSchedule(single, grouped, limits), at).toBe(false);
          const plan = grouped.tensorCores!;
          expect(plan.warpElements, at).toBe(sliceElements(grouped));
          const warps = invocations / WARP_LANES;
          const taken = [...plan.products.keys()].map((id) => groupOf(plan, grouped.program.nodes[id].shape, warps));
          expect(Math.max(...taken), at).toBe(plan.groupTiles);
          seen.add(plan.groupTiles);
        }
    expect([...seen].sort()).toEqual([1, 2, 4]);
  }, 120_000);

  it("are not kept where their slices take the room of an input's read-ahead", () => {
    // TTT-Linear at D = 128 on sm_90 under tf32x3: groups of 4 are as good a schedule, but their
    // slices leave room to read only two of its inputs ahead; groups of 2 read three. (Under bf16
    // the slices hold no rows of A, which its products load from the views' copies, and groups of
    // 4 read all three ahead.)
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 128 });
    const options: TargetOptions = { arch: 'sm_90', dtype: 'tf32x3' };
    const grouped = scheduleForward(c.chunk, arch, options);
    expect(grouped.tensorCores?.groupTiles).toBe(4);
    const ahead = tokenRows(withIo(allPorts(c.signature), 'f32'));
    expect(withPrefetch(grouped, arch.limits, ahead).prefetch?.size).toBe(2);
    const rendered = renderCuda(c, options).kernel;
    expect(rendered.tensorCores?.groupTiles).toBe(2);
    expect(rendered.prefetch?.size).toBe(3);
  });
});

const FORWARD_TOL = 1e-5;
const TRAINING_TOL = 1e-4;
/** Full 16-row tiles, a partial last mini-batch, carried accumulators. */
const CALL = { B: 1, H: 2, T: 37, start: 5, accum: true, rates: 0.3, seed: 5 };

/** Cases whose warps take groups, with the groups of the prefill, the checkpointing forward and the backward. */
const CASES = [
  { spec: 'ttt_mlp.ttt', D: 16, threads: 32, dtype: 'bf16', groups: [4, 4, 4] },
  { spec: 'gated_linear.ttt', D: 32, threads: 32, dtype: 'bf16', groups: [2, 2, 4] },
  { spec: 'ttt_mlp.ttt', D: 16, threads: 32, dtype: 'tf32x3', groups: [4, 4, 4] },
] as const;

/** The prefill's outputs, states and accumulators, then both training kernels' outputs and gradients. */
async function run(c: Compiled, options: TargetOptions, named: Map<string, Tensor>, ct: Map<string, Tensor>) {
  const inputs = innerLoopInputs(c.signature, named);
  const prefill = await CudaCpuInnerLoop.create(cudaCpuProgram(c, options));
  const forward = innerLoopOutputTensors(await prefill.run(inputs));
  const training = await CudaCpuBackward.create(cudaCpuBackwardProgram(c, options));
  const got = await training.run(inputs, innerLoopCotangents(c.signature, inputs, ct));
  return { forward, training: new Map([...innerLoopOutputTensors(got.outputs), ...gradientTensors(got.grads, named)]) };
}

describe('kernels whose warps take groups of tiles, on the CPU', () => {
  for (const { spec, D, threads, dtype, groups } of CASES)
    it(`${spec}, ${dtype}, D=${D}, ${threads} threads: warps take ${groups.join(', ')} tiles, within the bound`, async () => {
      const c = compileExample(spec, 'auto', { D, K: 16 });
      const options: TargetOptions = { arch: 'sm_90', dtype, threads };
      const { kernels } = renderCudaBackward(c, options);
      const planned = [renderCuda(c, options).kernel, kernels.checkpoints, kernels.backward];
      expect(planned.map((k) => k.tensorCores?.groupTiles)).toEqual(groups);

      const named = randomInputs(c.chunk, CALL);
      const f64Forward = innerLoopOutputTensors(runReference(c.chunk, innerLoopInputs(c.signature, named)));
      const r = rng(6);
      const ct = new Map(
        [...f64Forward].map(([n, t]): [string, Tensor] => [n, { shape: t.shape, data: normals(r, t.data.length) }]),
      );
      const f64 = referenceTraining(c, named, ct);
      const got = await run(c, options, named, ct);
      if (dtype === 'tf32x3') {
        expect(worst(got.forward, f64Forward)).toBeLessThan(FORWARD_TOL);
        expect(worst(got.training, f64)).toBeLessThan(TRAINING_TOL);
        return;
      }
      const { model, eFlip, bound } = bf16TrainingModel(c, named, ct);
      const forwardModel = new Map([...model].filter(([n]) => f64Forward.has(n)));
      for (const [which, kernel, want, eModel] of [
        ['prefill', got.forward, forwardModel, worst(forwardModel, f64Forward)],
        ['training', got.training, model, worst(model, f64)],
      ] as const) {
        const e = worst(kernel, want);
        expect(e, `${which} vs the bf16-operand reference (e_model ${eModel}, e_flip ${eFlip})`).toBeLessThan(bound);
        // The operands were rounded: the kernels are nearer the bf16 model than the f64 reference is.
        expect(e, which).toBeLessThan(eModel / 4);
      }
    }, 120_000);
});
