/** What the scheduler may use per thread block on each CUDA architecture `--arch` names. */
import type { TargetLimits } from '../../compiler/schedule/kernel.ts';
import { WARP_LANES } from '../../compiler/schedule/tensor-cores.ts';

export const THREADS = 256;

/** Dynamic shared memory a block may opt in to (cudaFuncAttributeMaxDynamicSharedMemorySize), in KB. */
const OPT_IN_KB: Record<string, number> = {
  sm_80: 163,
  sm_86: 99,
  sm_87: 163,
  sm_89: 99,
  sm_90: 227,
  sm_90a: 227,
};

/** Above this a kernel must opt in to more dynamic shared memory before it launches. */
export const DEFAULT_SHARED_BYTES = 48 * 1024;

export interface Arch {
  name: string;
  /** `sm_90` → 90, for `__CUDA_ARCH__` (900) and `-gencode` flags. */
  number: number;
  limits: TargetLimits;
}

export function archOf(name: string): Arch {
  const kb = OPT_IN_KB[name];
  if (kb === undefined)
    throw new Error(
      `the CUDA target knows no shared-memory limit for --arch ${name}; use one of ${Object.keys(OPT_IN_KB).join(', ')}`,
    );
  return {
    name,
    number: Number(/\d+/.exec(name)![0]),
    limits: { workgroupBytes: kb * 1024, invocations: THREADS, lanes: WARP_LANES },
  };
}
