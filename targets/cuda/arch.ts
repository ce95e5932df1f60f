/** What the scheduler may use per thread block on each CUDA architecture `--arch` names. */
import type { ScheduledKernel, TargetLimits } from '../../compiler/schedule/kernel.ts';
import { WARP_LANES } from '../../compiler/schedule/tensor-cores.ts';
import { residentHeads } from '../../compiler/schedule/workgroup-size.ts';

/** The most threads a block gives one (sequence, head); the scheduler may choose fewer (compiler/schedule/workgroup-size.ts). */
export const MAX_THREADS = 256;
/** Blocks an SM holds at most (sm_80 to sm_90). */
const BLOCKS_PER_SM = 32;

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
      invocations: MAX_THREADS,
      lanes: WARP_LANES,
      multiprocessor: {
        bytes: PER_SM_KB[name] * 1024,
        granule: 128,
        reservedBytes: 1024,
        invocations: Math.floor(REGISTERS_PER_SM / REGISTER_FLOOR),
        workgroups: BLOCKS_PER_SM,
      },
    },
  };
}

/** 32-bit registers per SM on every architecture the target knows (sm_80 to sm_90). */
const REGISTERS_PER_SM = 65536;
/**
 * The fewest registers per thread the launch bounds may leave ptxas (256 threads: at most 3
 * blocks). At 64 (4 blocks) three_layer_mlp's sm_90 prefill spilled; at 80 no example's prefill
 * kernel does (`npm run report:cuda`). So an SM holds at most 819 threads of a forward kernel,
 * whatever its block size.
 */
const REGISTER_FLOOR = 80;

/**
 * The blocks per SM a forward kernel's `__launch_bounds__` asks ptxas to allow. A kernel that walks
 * chunks of several rows asks for as many as its shared memory, its threads at the register floor
 * and the SM's block slots let an SM hold (the scheduler laid it out for that many): without the
 * bound ptxas spends registers freely, and they, not the scheduled shared memory, decide the
 * blocks per SM. A one-row kernel (decode) asks for one: it runs one token per launch, and under
 * the same cap five of the examples' decode kernels spilled.
 */
export function minBlocksPerSm(kernel: ScheduledKernel, arch: Arch): number {
  if (kernel.chunk.rows === 1) return 1;
  return residentHeads(arch.limits, kernel);
}
