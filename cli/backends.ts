/** The inner-loop backends `tttc run --backend` offers. */
import { webgpuInnerLoop } from './link.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import type { InnerLoopInputs, InnerLoopOutputs } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';

export interface Backend {
  /** The dtype the backend writes its results in. */
  dtype: 'F64' | 'F32';
  run(compiled: Compiled, inputs: InnerLoopInputs): Promise<InnerLoopOutputs>;
}

export const BACKENDS: ReadonlyMap<string, Backend> = new Map<string, Backend>([
  ['reference', { dtype: 'F64', run: async (c, inputs) => runReference(c.chunk, inputs) }],
  ['webgpu', { dtype: 'F32', run: async (c, inputs) => (await webgpuInnerLoop(c)).run(inputs) }],
]);
