/** A rendered CUDA layer as the CPU runtime (runtime/cuda-cpu) runs it: its files and launcher interface. */
import type { Compiled } from '../../compiler/pipeline.ts';
import type { CudaCpuProgram } from '../../runtime/cuda-cpu/program.ts';
import { signatureOf } from '../../runtime/signature.ts';
import type { TargetOptions } from '../target.ts';
import { renderCuda } from './render.ts';

export function cudaCpuProgram(compiled: Compiled, options: TargetOptions): CudaCpuProgram {
  const cuda = renderCuda(compiled, options);
  const { api } = cuda;
  return {
    signature: signatureOf(compiled),
    arch: cuda.arch.name,
    files: cuda.files.filter((f) => f.path === api.source || f.path === api.header),
    source: api.source,
    header: api.header,
    argsType: api.args,
    sizes: { B: 'B', H: 'H', T: 'T', start: 'start' },
    tensors: cuda.tensors.map((t) => ({ ...t })),
    scratch: { pointer: 'scratch', bytes: 'scratch_bytes', size: api.scratchBytes },
    forward: api.forward,
    lastError: api.lastError,
  };
}
