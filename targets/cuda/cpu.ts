/** A rendered CUDA layer as the CPU runtime (runtime/cuda-cpu) runs it: its files and launcher interface. */
import type { Compiled } from '../../compiler/pipeline.ts';
import { identifier, runKey } from '../../core/mangle.ts';
import type { Port } from '../../core/signature.ts';
import type { CudaCpuProgram, CudaTensorField, CudaTensorRole } from '../../runtime/cuda-cpu/program.ts';
import type { TargetOptions } from '../target.ts';
import { MMA_HEADER_FILE } from './mma.ts';
import { renderCuda } from './render.ts';

export function cudaCpuProgram(compiled: Compiled, options: TargetOptions): CudaCpuProgram {
  const cuda = renderCuda(compiled, options);
  const { api } = cuda;
  return {
    signature: compiled.signature,
    arch: cuda.arch.name,
    files: cuda.files.filter((f) => f.path === api.source || f.path === api.header || f.path === MMA_HEADER_FILE),
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
  const field = { field: identifier(p), lead: p.lead, shape: p.shape, written: p.io === 'out' };
  switch (p.role) {
    case 'rate':
      return { role: 'lr', name: p.name, ...field };
    case 'state-rate':
    case 'decay':
    case 'momentum':
      return { role: 'token', name: runKey(p), ...field };
    case 'state':
    case 'accum':
    case 'opt': {
      const role: CudaTensorRole = p.io === 'out' ? `${p.role}_out` : p.role;
      return { role, name: p.name, ...field };
    }
    default:
      return { role: p.role, name: p.name, ...field };
  }
}
