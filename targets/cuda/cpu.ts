/** A rendered CUDA layer as the CPU runtime (runtime/cuda-cpu) runs it: its files and launcher interface. */
import type { Compiled } from '../../compiler/pipeline.ts';
import { identifier, runKey } from '../../core/mangle.ts';
import type { Port } from '../../core/signature.ts';
import type { CudaCpuProgram, CudaTensorField, CudaTensorRole } from '../../runtime/cuda-cpu/program.ts';
import type { TargetOptions } from '../target.ts';
import { archOf } from './arch.ts';
import { renderCudaBackward } from './backward.ts';
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
export function tensorField(p: Port): CudaTensorField {
  const field = {
    field: identifier(p),
    lead: p.lead,
    shape: p.shape,
    written: p.io === 'out',
    ...(p.bf16 ? { bf16: true as const } : {}),
  };
  if (p.grad)
    return {
      role: p.io === 'in' ? 'cotangent' : 'gradient',
      name: runKey({ role: p.role, name: p.name }),
      of: { role: p.role, name: p.name },
      ...field,
    };
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

/** A rendered CUDA backward (backward.ts) as the CPU runtime runs it. */
export function cudaCpuBackwardProgram(compiled: Compiled, options: TargetOptions): CudaCpuProgram {
  const cuda = renderCudaBackward(compiled, options);
  const { api } = cuda;
  return {
    signature: compiled.signature,
    arch: archOf(options.arch).name,
    files: cuda.files,
    source: api.source,
    header: api.header,
    argsType: api.args,
    sizes: { B: 'B', H: 'H', T: 'T', start: 'start' },
    tensors: cuda.tensors.map(tensorField),
    scratch: { pointer: 'scratch', bytes: 'scratch_bytes', size: api.scratchBytes },
    forward: api.forward,
    lastError: api.lastError,
    rows: compiled.chunk.rows,
  };
}
