/**
 * Blocks per SM from a kernel's registers, shared memory and threads, by the rules of the CUDA
 * occupancy calculator (CUDA C++ Programming Guide, "Compute Capabilities", table "Technical
 * Specifications per Compute Capability"; CUDA C++ Best Practices Guide, "Occupancy"): a block
 * is resident only when its warps, its registers and its shared memory all fit beside the others.
 */
import { archOf } from './arch.ts';

export interface ArchLimits {
  arch: string;
  /** 32-bit registers per SM. */
  registersPerSm: number;
  /** Registers are allocated per warp in units of this many. */
  registerUnit: number;
  /** Shared memory per SM at the largest carveout, in bytes. */
  sharedPerSm: number;
  /** The most shared memory one block may have once it opts in (cudaFuncAttributeMaxDynamicSharedMemorySize). */
  sharedPerBlockOptIn: number;
  /** Shared memory is allocated in units of this many bytes. */
  sharedUnit: number;
  /** Shared memory the system reserves for every resident block (CUDA 11+, cc 8.0 and later). */
  sharedReservedPerBlock: number;
  threadsPerSm: number;
  blocksPerSm: number;
}

/** Shared memory per SM, per block and its units, as the scheduler has them for the arch (targets/cuda/arch.ts). */
function shared(
  name: string,
): Pick<ArchLimits, 'sharedPerSm' | 'sharedPerBlockOptIn' | 'sharedUnit' | 'sharedReservedPerBlock'> {
  const { workgroupBytes, multiprocessor } = archOf(name).limits;
  return {
    sharedPerSm: multiprocessor!.bytes,
    sharedPerBlockOptIn: workgroupBytes,
    sharedUnit: multiprocessor!.granule,
    sharedReservedPerBlock: multiprocessor!.reservedBytes,
  };
}

/** Threads and blocks per SM where they differ from sm_80's and sm_90's 2048 and 32 (sm_86, sm_89). */
const SMALLER_SM: Record<string, { threadsPerSm: number; blocksPerSm: number }> = {
  sm_86: { threadsPerSm: 1536, blocksPerSm: 16 },
  sm_89: { threadsPerSm: 1536, blocksPerSm: 24 },
};

/**
 * The limits of an arch `--arch` accepts: 64K registers per SM in every one; A100 (sm_80) has 164 KB
 * shared memory per SM of which one block may opt in to 163 KB, H100/H200 (sm_90) 228 and 227 KB.
 */
export function occupancyLimits(arch: string): ArchLimits {
  return {
    arch,
    registersPerSm: 65536,
    registerUnit: 256,
    ...shared(arch),
    ...(SMALLER_SM[arch] ?? { threadsPerSm: 2048, blocksPerSm: 32 }),
  };
}

/** The archs the static report covers. */
export const ARCHS: Record<'sm_80' | 'sm_90', ArchLimits> = {
  sm_80: occupancyLimits('sm_80'),
  sm_90: occupancyLimits('sm_90'),
};

export interface Occupancy {
  /** Resident blocks per SM: the least of the four limits below (0: the kernel cannot launch). */
  blocks: number;
  byWarps: number;
  byRegisters: number;
  byShared: number;
  byBlocks: number;
  /** Which limit binds. */
  limiter: 'warps' | 'registers' | 'shared' | 'blocks';
  /** Resident warps over the SM's 64. */
  warpOccupancy: number;
}

const roundUp = (x: number, unit: number) => Math.ceil(x / unit) * unit;

/** Blocks per SM for a block of `threads` threads with `registers` per thread and `sharedBytes` (static + dynamic). */
export function occupancy(limits: ArchLimits, threads: number, registers: number, sharedBytes: number): Occupancy {
  const warps = Math.ceil(threads / 32);
  const byWarps = Math.floor(limits.threadsPerSm / 32 / warps);
  // Registers: each warp takes registers x 32 rounded up to the allocation unit.
  const perWarp = roundUp(Math.max(registers, 1) * 32, limits.registerUnit);
  const byRegisters = Math.floor(Math.floor(limits.registersPerSm / perWarp) / warps);
  // Shared memory: the block's bytes rounded to the unit, plus the system's reserve; above the
  // opt-in limit the launch fails.
  const perBlock = roundUp(sharedBytes, limits.sharedUnit) + limits.sharedReservedPerBlock;
  const byShared =
    sharedBytes > limits.sharedPerBlockOptIn
      ? 0
      : sharedBytes === 0
        ? limits.blocksPerSm
        : Math.floor(limits.sharedPerSm / perBlock);
  const byBlocks = limits.blocksPerSm;
  const all = { warps: byWarps, registers: byRegisters, shared: byShared, blocks: byBlocks } as const;
  const limiter = (Object.keys(all) as (keyof typeof all)[]).reduce((a, b) => (all[b] < all[a] ? b : a));
  const blocks = all[limiter];
  return {
    blocks,
    byWarps,
    byRegisters,
    byShared,
    byBlocks,
    limiter,
    warpOccupancy: (blocks * warps) / (limits.threadsPerSm / 32),
  };
}
