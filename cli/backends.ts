/** The inner-loop backends `tttc run --backend` offers. */
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import type {
  InnerLoopCotangents,
  InnerLoopGradients,
  InnerLoopInputs,
  InnerLoopOutputs,
} from '../runtime/inner-loop.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { cudaCpuBackwardProgram, cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import type { TargetOptions } from '../targets/target.ts';
import type { PhaseListener } from '../runtime/webgpu/inner-loop.ts';
import { webgpuInnerLoop, webgpuInnerLoopBackward } from './link.ts';

export interface Backend {
  /** The dtype the backend writes its results in. */
  dtype: 'F64' | 'F32';
  /** Whether it runs the generated CUDA, which `--arch`, `--dtype` and `--io` choose. */
  runsGeneratedCuda?: boolean;
  /**
   * `options` choose the generated code where a backend runs generated CUDA (`--arch`, `--dtype`);
   * `onPhase` hears of the phases a backend times apart (set-up, upload, kernels, download).
   */
  run(
    compiled: Compiled,
    inputs: InnerLoopInputs,
    options: TargetOptions & { onPhase?: PhaseListener },
  ): Promise<InnerLoopOutputs>;
  /** The call and the gradients of its inputs, for cotangents of its outputs. */
  backward(
    compiled: Compiled,
    inputs: InnerLoopInputs,
    cotangents: InnerLoopCotangents,
    options: TargetOptions,
  ): Promise<{ outputs: InnerLoopOutputs; grads: InnerLoopGradients }>;
}

export const BACKENDS: ReadonlyMap<string, Backend> = new Map<string, Backend>([
  [
    'reference',
    {
      dtype: 'F64',
      run: async (c, inputs) => runReference(c.chunk, inputs),
      backward: async (c, inputs, cotangents) => {
        const checkpoints: Checkpoints = [];
        const outputs = runReference(c.chunk, inputs, checkpoints);
        return { outputs, grads: runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents) };
      },
    },
  ],
  [
    'webgpu',
    {
      dtype: 'F32',
      run: async (c, inputs, { onPhase }) => {
        const started = performance.now();
        const loop = await webgpuInnerLoop(c);
        onPhase?.('set-up (adapter, kernels)', performance.now() - started);
        return loop.run(inputs, { onPhase });
      },
      backward: async (c, inputs, cotangents) => (await webgpuInnerLoopBackward(c)).run(inputs, cotangents),
    },
  ],
  [
    'cuda-cpu',
    {
      dtype: 'F32',
      runsGeneratedCuda: true,
      run: async (c, inputs, options) => (await CudaCpuInnerLoop.create(cudaCpuProgram(c, options))).run(inputs),
      backward: async (c, inputs, cotangents, options) =>
        (await CudaCpuBackward.create(cudaCpuBackwardProgram(c, options))).run(inputs, cotangents),
    },
  ],
]);
