/**
 * Which buffered products run on tensor cores (warp-level mma m16n8k16: 16x8 output tiles, the
 * contraction in steps of 16, bf16 operands, f32 accumulation), for a target that has them and
 * rounds products' operands to bf16 anyway. Decided from shapes and on-chip room alone: a product
 * qualifies when padding its extents to the tile wastes at most half of each (padded rows and
 * columns are staged as zeros and never stored), and the warps' staging slices fit in on-chip
 * memory beside the scheduled buffers. Everything else keeps its register-tiled loop.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import type { ScheduledKernel, TargetLimits, TensorCorePlan } from './kernel.ts';
import { schedule } from './schedule.ts';

/** The mma shape: output rows, output columns, contraction per instruction. */
export const MMA_TILE = { m: 16, n: 8, k: 16 } as const;
export const WARP_LANES = 32;
/** At most this many contraction columns are staged at once, so a warp's slice stays small. */
const MAX_SLAB = 32;
/** Padding after each staged row, in bf16 elements: 16 bytes, which keeps rows aligned for ldmatrix. */
const ROW_PADDING = 8;

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Whether an extent fills at least half of the tiles it pads to. */
const fills = (extent: number, tile: number) => 2 * extent >= roundUp(extent, tile);

/** The product's output rows, output columns and contraction (the last axes; leading axes are a batch). */
export function productExtents(k: ScheduledKernel, id: number): { m: number; n: number; contraction: number } {
  const node = k.program.nodes[id];
  const a = k.program.nodes[node.args[0]];
  const r = node.shape.length;
  return { m: node.shape[r - 2], n: node.shape[r - 1], contraction: a.shape[r - 1] };
}

/** The staging a kernel's products need, or undefined when none qualifies. */
function plan(k: ScheduledKernel): Omit<TensorCorePlan, 'stagingOffset'> | undefined {
  if (k.invocations % WARP_LANES !== 0) return undefined;
  const products = new Set<number>();
  let contraction = 0;
  for (const id of k.buffers.keys()) {
    if (k.program.nodes[id].op.kind !== 'matmul') continue;
    const e = productExtents(k, id);
    if (!fills(e.m, MMA_TILE.m) || !fills(e.n, MMA_TILE.n) || !fills(e.contraction, MMA_TILE.k)) continue;
    products.add(id);
    contraction = Math.max(contraction, e.contraction);
  }
  if (products.size === 0) return undefined;
  const slab = Math.min(MAX_SLAB, roundUp(contraction, MMA_TILE.k));
  const rowStride = slab + ROW_PADDING;
  return { products, slab, rowStride, warpElements: (MMA_TILE.m + MMA_TILE.n) * rowStride };
}

/** Bytes of on-chip memory the warps' staging slices take. */
const stagingBytes = (k: ScheduledKernel, p: Omit<TensorCorePlan, 'stagingOffset'>) =>
  (k.invocations / WARP_LANES) * p.warpElements * 2;

/** The staging appended after the scheduled buffers, when it fits. */
function appended(k: ScheduledKernel, limits: TargetLimits): ScheduledKernel | undefined {
  const p = plan(k);
  if (!p) return undefined;
  const stagingOffset = roundUp(k.workgroupFloats, 4);
  const workgroupFloats = stagingOffset + stagingBytes(k, p) / 4;
  if (workgroupFloats * 4 > limits.workgroupBytes) return undefined;
  return { ...k, workgroupFloats, tensorCores: { ...p, stagingOffset } };
}

/**
 * The chunk scheduled with its qualifying products on tensor cores: the staging goes after the
 * scheduled buffers, and where on-chip memory is full, the buffers are scheduled again within
 * what the staging leaves (the rest goes to scratch). Unchanged when no product qualifies.
 */
export function scheduleWithTensorCores(chunk: ChunkProgram, limits: TargetLimits): ScheduledKernel {
  const k = schedule(chunk, limits);
  const p = plan(k);
  if (!p) return k;
  const room = limits.workgroupBytes - stagingBytes(k, p) - 16;
  return (
    appended(k, limits) ??
    (room > 0 ? appended(schedule(chunk, { ...limits, workgroupBytes: room }), limits) : undefined) ??
    k
  );
}
