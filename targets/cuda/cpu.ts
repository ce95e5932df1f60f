/** A rendered CUDA layer as the CPU runtime (runtime/cuda-cpu) runs it: its files and launcher interface. */
import type { Compiled } from '../../compiler/pipeline.ts';
import { identifier } from '../../core/mangle.ts';
import type { Port } from '../../core/signature.ts';
import type { CudaCpuProgram, CudaTensorField, CudaTensorRole } from '../../runtime/cuda-cpu/program.ts';
import type { TargetOptions } from '../target.ts';
import { renderCuda } from './render.ts';

export function cudaCpuProgram(compiled: Compiled, options: TargetOptions): CudaCpuProgram {
  const cuda = renderCuda(compiled, options);
  const { api } = cuda;
  return {
    signature: compiled.signature,
    arch: cuda.arch.name,
    files: cuda.files.filter((f) => f.path === api.source || f.path === api.header),
    source: api.source,
    header: api.header,
    argsType: api.args,
    sizes: { B: 'B', H: 'H', T: 'T', start: 'start' },
    tensors: cuda.tensors.map(tensorField),
    scratch: { pointer: 'scratch', bytes: 'scratch_bytes', size: api.scratchBytes },
    forward: api.forward,
    lastError: api.lastError,
  };
}

/** A launcher field as the CPU runtime fills it: which tensor of the call it holds. */
function tensorField(p: Port): CudaTensorField {
  const role: CudaTensorRole =
    p.role === 'rate' ? 'lr' : p.io === 'out' && (p.role === 'state' || p.role === 'accum') ? `${p.role}_out` : p.role;
  return { role, name: p.name, field: identifier(p), lead: p.lead, shape: p.shape, written: p.io === 'out' };
}
