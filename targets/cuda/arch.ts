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

/**
 * Shared memory per SM at the largest carveout, in KB, which the resident blocks share (CUDA C++
 * Programming Guide, "Technical Specifications per Compute Capability"); each block's is
 * allocated in 128-byte units, plus 1 KB the system reserves per block.
 */
const PER_SM_KB: Record<string, number> = {
  sm_80: 164,
  sm_86: 100,
  sm_87: 164,
  sm_89: 100,
  sm_90: 228,
  sm_90a: 228,
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
    limits: {
      workgroupBytes: kb * 1024,
      invocations: THREADS,
      lanes: WARP_LANES,
      multiprocessor: { bytes: PER_SM_KB[name] * 1024, granule: 128, reservedBytes: 1024 },
    },
  };
}
