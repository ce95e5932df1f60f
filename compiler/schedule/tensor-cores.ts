/**
 * Which products run on tensor cores (warp-level mma: 16x8 output tiles, f32 accumulation; the
 * contraction in steps of 16 on bf16 operands, or of 8 on tf32 ones split in three for f32
 * accuracy, `MmaOperands`), for a target that has them and asks for such products (CUDA under
 * `--dtype bf16`, which rounds every product's operands anyway, or `tf32x3`). Decided from
 * shapes and on-chip room alone: a product
 * qualifies when padding its extents to the tile wastes at most half of each (padded rows and
 * columns are staged as zeros and never stored), and the warps' staging slices fit in on-chip
 * memory: in a gap no warp uses during the product where there is one, else after the buffers.
 *
 * Both kinds of product qualify: a buffered one (its compute stage stores the tiles), and one a
 * state's update stage computes where it reads it (`ScheduledKernel.updateProducts`), whose warps
 * then take the state's tiles and update each element from the accumulator in registers. Such an
 * update qualifies where the product is its state's only one (one tile loop per update) and its
 * operands read none of the values the update writes (warps update their tiles while others still
 * stage theirs). Everything else keeps its register-tiled or per-element loop.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import type { Carried, MmaOperands, ScheduledKernel, TargetLimits, TensorCorePlan } from './kernel.ts';
import type { KernelPlan } from './layout.ts';
import { size } from '../ir/ir.ts';
import { stageReads } from './reads.ts';
import { acrossWarps } from './barriers.ts';
import { betterSchedule, synchronise } from './layout.ts';
import { homeKey, schedule } from './schedule.ts';
import { firstGap, homeSpans, type Span } from './spans.ts';

/** The mma shape: output rows, output columns, contraction per instruction (m16n8k16 bf16, m16n8k8 tf32). */
export const mmaTile = (operands: MmaOperands) => ({ m: 16, n: 8, k: operands === 'bf16' ? 16 : 8 }) as const;
/** Bytes of a staged operand element: bf16, or f32 (tf32x3 splits it in registers). */
export const stagedBytes = (operands: MmaOperands): 2 | 4 => (operands === 'bf16' ? 2 : 4);
export const WARP_LANES = 32;
/** At most this many bytes of contraction columns are staged at once, so a warp's slice stays small. */
const MAX_SLAB_BYTES = 64;
/** Padding after each staged row: 16 bytes, which keeps rows aligned for ldmatrix. */
const ROW_PADDING_BYTES = 16;

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

/**
 * The tiles a warp of this product takes at once: the plan's group, or fewer where the product
 * has too few tiles along its columns, or too few groups to keep every warp busy.
 */
export function groupOf(
  plan: Pick<TensorCorePlan, 'operands' | 'groupTiles'>,
  shape: readonly number[],
  warps: number,
): number {
  const r = shape.length;
  const mma = mmaTile(plan.operands);
  const others = shape.slice(0, r - 2).reduce((x, y) => x * y, 1) * Math.ceil(shape[r - 2] / mma.m);
  const columns = Math.ceil(shape[r - 1] / mma.n);
  let group = plan.groupTiles;
  while (group > 1 && (group > columns || others * Math.ceil(columns / group) < warps)) group /= 2;
  return group;
}

type Sizing = Omit<TensorCorePlan, 'products'>;

/** The index of the stage that computes a product: its own, or the update stage that reads it. */
export function productStage(k: ScheduledKernel, id: number): number {
  const state = k.updateProducts?.get(id);
  return k.stages.findIndex((s) =>
    state === undefined ? s.kind === 'compute' && s.node === id : s.kind === 'update' && s.state === state,
  );
}

/** Where the tensor-core staging of a stage starts in on-chip memory (floats); undefined for a stage without. */
export function stageStaging(k: ScheduledKernel, stage: number): number | undefined {
  for (const [id, offset] of k.tensorCores?.products ?? []) if (productStage(k, id) === stage) return offset;
  return undefined;
}

/**
 * The update products that may run on tensor cores: each its state's only one, with operands that
 * read (inline, through unbuffered nodes) none of the values that state's update writes.
 */
function updateCandidates(k: ScheduledKernel): number[] {
  const byState = new Map<string, number[]>();
  for (const [id, state] of k.updateProducts ?? []) byState.set(state, [...(byState.get(state) ?? []), id]);
  const carried: Carried[] = ['state', 'accum', 'opt'];
  return [...byState].flatMap(([state, ids]) => {
    if (ids.length !== 1) return [];
    const written = new Set(carried.map((kind) => homeKey(kind, state)));
    const pending = [...k.program.nodes[ids[0]].args];
    const seen = new Set<number>();
    while (pending.length > 0) {
      const id = pending.pop()!;
      if (seen.has(id) || k.buffers.has(id)) continue;
      seen.add(id);
      const op = k.program.nodes[id].op;
      if (op.kind === 'input' && written.has(op.name)) return [];
      pending.push(...k.program.nodes[id].args);
    }
    return ids;
  });
}

/** The products that qualify and the staging they need, for warps that take `groupTiles` tiles at once. */
function plan(
  k: ScheduledKernel,
  operands: MmaOperands,
  groupTiles: number,
): { products: number[]; sizing: Sizing } | undefined {
  if (k.invocations % WARP_LANES !== 0) return undefined;
  const tile = mmaTile(operands);
  const products: number[] = [];
  let contraction = 0;
  for (const id of [...k.buffers.keys(), ...updateCandidates(k)]) {
    if (k.program.nodes[id].op.kind !== 'matmul') continue;
    const e = productExtents(k, id);
    if (!fills(e.m, tile.m) || !fills(e.n, tile.n) || !fills(e.contraction, tile.k)) continue;
    products.push(id);
    contraction = Math.max(contraction, e.contraction);
  }
  if (products.length === 0) return undefined;
  const bytes = stagedBytes(operands);
  const slab = Math.min(MAX_SLAB_BYTES / bytes, roundUp(contraction, tile.k));
  const rowStride = slab + ROW_PADDING_BYTES / bytes;
  // Slices as large as the largest group a product takes: none may take the one asked for.
  const warps = k.invocations / WARP_LANES;
  const used = Math.max(...products.map((id) => groupOf({ operands, groupTiles }, k.program.nodes[id].shape, warps)));
  return {
    products,
    sizing: { operands, slab, rowStride, groupTiles: used, warpElements: (tile.m + tile.n * used) * rowStride },
  };
}

/** Floats of on-chip memory the warps' staging slices take. */
const stagingFloats = (k: ScheduledKernel, s: Sizing) =>
  ((k.invocations / WARP_LANES) * s.warpElements * stagedBytes(s.operands)) / 4;

/** Floats of on-chip memory the staging of each product of a kernel's tensor-core plan takes. */
export const tensorCoreStagingFloats = (k: ScheduledKernel): number => stagingFloats(k, k.tensorCores!);

/**
 * On-chip memory in use while a stage runs, as seen by any warp: the homes kept on chip, and each
 * buffer live at some stage with no barrier between it and this one (another warp may still be
 * there).
 */
function busy(k: ScheduledKernel, stage: number): Span[] {
  const lo = intervalStart(k, stage);
  let hi = stage;
  while (hi < k.stages.length - 1 && !acrossWarps(k.barriers[hi])) hi++;
  const life = new Map<number, Span>();
  k.stages.forEach((s, i) => {
    const touched = stageReads(s, k.program, (x) => k.buffers.has(x)).filter((x) => k.buffers.has(x));
    if (s.kind === 'compute') touched.push(s.node);
    for (const id of touched) {
      const l = life.get(id);
      life.set(id, l ? { from: Math.min(l.from, i), to: Math.max(l.to, i) } : { from: i, to: i });
    }
  });
  const out: Span[] = [];
  for (const [id, l] of life) {
    const p = k.buffers.get(id)!;
    if (p.space === 'workgroup' && l.from <= hi && lo <= l.to)
      out.push({ from: p.offset, to: p.offset + size(k.program.nodes[id].shape) });
  }
  out.push(...homeSpans(k));
  return out;
}

/** The first stage of the barrier interval holding `stage`: the stages no barrier separates run together. */
function intervalStart(k: ScheduledKernel, stage: number): number {
  let lo = stage;
  while (lo > 0 && !acrossWarps(k.barriers[lo - 1])) lo--;
  return lo;
}

/** Synchronised kernels by the scheduled kernel and its products on tensor cores: every group of tiles shares one. */
const tiledKernels = new WeakMap<ScheduledKernel, Map<string, ScheduledKernel>>();

/**
 * The scheduled kernel synchronised with `products` on tensor cores. Warps own the products' tiles
 * (and an update's, its state's), not their rows: the rows and barriers around them change.
 */
function withTiledProducts(
  scheduled: ScheduledKernel,
  limits: TargetLimits,
  key: KernelPlan['homeKey'],
  products: readonly number[],
): ScheduledKernel {
  const known = tiledKernels.get(scheduled) ?? new Map<string, ScheduledKernel>();
  tiledKernels.set(scheduled, known);
  const memoKey = JSON.stringify([limits.lanes, products]);
  const hit = known.get(memoKey);
  if (hit) return hit;
  const updated = new Map(scheduled.stages.flatMap((s) => (s.kind === 'update' ? [[s.state, s.stateNode]] : [])));
  const tiled = products.map((id) => {
    const state = scheduled.updateProducts?.get(id);
    return state === undefined ? id : updated.get(state)!;
  });
  const k = { ...scheduled, ...synchronise(scheduled, limits.lanes, key, new Set(tiled)) };
  known.set(memoKey, k);
  return k;
}

/**
 * Each product's staging placed in on-chip memory no warp can be using while it runs, so a gap
 * between the scheduled buffers serves; products no barrier separates share one place (slices are
 * per warp, and a warp runs them in turn). Undefined when it does not fit.
 */
function placed(
  scheduled: ScheduledKernel,
  limits: TargetLimits,
  key: KernelPlan['homeKey'],
  operands: MmaOperands,
  groupTiles: number,
): ScheduledKernel | undefined {
  const p = plan(scheduled, operands, groupTiles);
  if (!p) return undefined;
  const k = withTiledProducts(scheduled, limits, key, p.products);
  const floats = stagingFloats(k, p.sizing);
  const byInterval = new Map<number, number>();
  const products = new Map<number, number>();
  let workgroupFloats = k.workgroupFloats;
  for (const id of p.products) {
    const stage = productStage(k, id);
    const lo = intervalStart(k, stage);
    const offset = byInterval.get(lo) ?? firstGap(busy(k, stage), floats);
    byInterval.set(lo, offset);
    products.set(id, offset);
    workgroupFloats = Math.max(workgroupFloats, offset + floats);
  }
  if (workgroupFloats * 4 > limits.workgroupBytes) return undefined;
  return { ...k, workgroupFloats, tensorCores: { products, ...p.sizing } };
}

/**
 * The chunk scheduled with its qualifying products on tensor cores (see withTensorCores). Homes in
 * two slots (schedule.ts, TwoSlots) are weighed with the staging in place: the block barriers they
 * save without it may be ones the tensor-core stages need anyway, they take room the staging could
 * use, and the resident blocks a schedule counts without the staging are not those with it. So
 * the kernel is scheduled with one slot, with two where they pay, and with two wherever they save
 * barriers, and the best kept (betterSchedule) of those with as many products on tensor cores.
 * Warps take one tile at a time, or, where `grouped`, groups of tiles (inTileGroups) once the
 * slots are chosen.
 */
export function scheduleWithTensorCores(
  chunk: ChunkProgram,
  limits: TargetLimits,
  operands: MmaOperands = 'bf16',
  grouped = false,
): ScheduledKernel {
  const [single, ...doubled] = (['never', 'paying', 'fewer-barriers'] as const).map((slots) => {
    const scheduleFor = (l: TargetLimits) => schedule(chunk, l, slots);
    return { scheduleFor, kernel: withTensorCores(scheduleFor, limits, homeKey, operands) };
  });
  const best = doubled
    .filter((k) => products(k.kernel) >= products(single.kernel))
    .reduce((best, k) => (betterSchedule(k.kernel, best.kernel, limits) ? k : best), single);
  if (!grouped) return best.kernel;
  return inTileGroups(best.kernel, limits, (group) => withGroup(best.scheduleFor, limits, homeKey, operands, group));
}

/**
 * A kernel chosen with its warps taking single tiles (`chosen`: its block size among others),
 * scheduled again at its block size by `grouped`, which weighs groups of tiles; the block sizes
 * weighed are kept. Weighing every group at every block size and under every other choice made
 * rendering more than twice as slow.
 */
export function withTileGroupsAtSize(
  chosen: ScheduledKernel,
  limits: TargetLimits,
  grouped: (limits: TargetLimits) => ScheduledKernel,
): ScheduledKernel {
  if (!chosen.tensorCores) return chosen;
  const k = grouped({ ...limits, invocations: chosen.invocations });
  return chosen.blockSizes ? { ...k, blockSizes: chosen.blockSizes } : k;
}

const products = (k: ScheduledKernel) => k.tensorCores?.products.size ?? 0;

/**
 * Tiles a warp may take at once (TensorCorePlan.groupTiles), most first: a group stages A's rows
 * once for all its tiles, at the cost of B's rows for each in the warp's slice.
 */
const GROUP_TILES = [4, 2];

/**
 * `single`, a kernel whose warps take one tile at a time, or the same kernel scheduled by
 * `inGroup` with its warps taking the largest group of tiles that keeps as many products on
 * tensor cores and is as good a schedule (betterSchedule: blocks per SM, global memory, block
 * barriers): a group saves staging, but its slices take room.
 */
function inTileGroups(
  single: ScheduledKernel,
  limits: TargetLimits,
  inGroup: (groupTiles: number) => ScheduledKernel,
): ScheduledKernel {
  const plan = single.tensorCores;
  if (!plan) return single;
  const warps = single.invocations / WARP_LANES;
  const useful = Math.max(
    ...[...plan.products.keys()].map((id) =>
      groupOf({ ...plan, groupTiles: GROUP_TILES[0] }, single.program.nodes[id].shape, warps),
    ),
  );
  for (const group of GROUP_TILES.filter((g) => g <= useful)) {
    const k = inGroup(group);
    if (products(k) >= products(single) && !betterSchedule(single, k, limits)) return k;
  }
  return single;
}

/**
 * A kernel scheduled by `scheduleFor` (the forward's scheduler, or the backward's, whose carried
 * values are keyed by `key`) with its qualifying products on tensor cores: the staging goes after
 * the scheduled buffers, and where on-chip memory is full, the buffers are scheduled again within
 * what the staging leaves (the rest goes to scratch). Warps take one tile at a time, or, where
 * `grouped`, groups of tiles (inTileGroups). Unchanged when no product qualifies.
 */
export function withTensorCores(
  scheduleFor: (limits: TargetLimits) => ScheduledKernel,
  limits: TargetLimits,
  key: KernelPlan['homeKey'],
  operands: MmaOperands,
  grouped = false,
): ScheduledKernel {
  const single = withGroup(scheduleFor, limits, key, operands, 1);
  if (!grouped) return single;
  return inTileGroups(single, limits, (group) => withGroup(scheduleFor, limits, key, operands, group));
}

/** withTensorCores with warps taking up to `groupTiles` tiles at once. */
function withGroup(
  scheduleFor: (limits: TargetLimits) => ScheduledKernel,
  limits: TargetLimits,
  key: KernelPlan['homeKey'],
  operands: MmaOperands,
  groupTiles: number,
): ScheduledKernel {
  const plain = scheduleFor(limits);
  const p = plan(plain, operands, groupTiles);
  if (!p) return plain;
  const staging = stagingFloats(plain, p.sizing) * 4;
  const room = limits.workgroupBytes - staging - 16;
  const withStaging = (l: TargetLimits) =>
    placed(scheduleFor(l), limits, key, operands, groupTiles) ??
    (room > 0 ? placed(scheduleFor({ ...l, workgroupBytes: room }), limits, key, operands, groupTiles) : undefined) ??
    scheduleFor(l);
  // The scheduler counts resident blocks without the staging, which may fit a gap or not: schedule
  // also as if each block took it whole, and keep the better (layout.ts: more blocks per SM, then
  // less global memory, then fewer block barriers).
  const m = limits.multiprocessor;
  const options = [withStaging(limits)];
  if (m) options.push(withStaging({ ...limits, multiprocessor: { ...m, reservedBytes: m.reservedBytes + staging } }));
  return options.reduce((best, k) => (betterSchedule(k, best, limits) ? k : best));
}
