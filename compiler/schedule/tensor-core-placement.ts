/**
 * A kernel with its qualifying products on tensor cores (tensor-cores.ts says which, and the
 * staging they need): each view's bf16 copy placed in on-chip memory no warp uses from the view's
 * staging to its last product, each product's staging in memory no warp uses while it runs (nor a
 * copy), the kernel scheduled again where they do not fit, the homes' slots weighed with them in
 * place, and the warps' groups of tiles chosen last.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import { size } from '../ir/ir.ts';
import { acrossWarps } from './barriers.ts';
import type { MmaOperands, OperandCopy, ScheduledKernel, TargetLimits } from './kernel.ts';
import { betterSchedule, globalFloats, type KernelPlan, residentWorkgroups, synchronise } from './layout.ts';
import { stageReads } from './reads.ts';
import { homeKey, schedule } from './schedule.ts';
import { firstGap, homeSpans, type Span } from './spans.ts';
import {
  copiedOperand,
  copyFloats,
  copyRowStride,
  groupOf,
  plan,
  productStage,
  stagingFloats,
  WARP_LANES,
} from './tensor-cores.ts';

/**
 * On-chip memory in use while a stage runs, as seen by any warp: the homes kept on chip, and each
 * buffer live at some stage with no barrier between it and this one (another warp may still be
 * there).
 */
function busy(k: ScheduledKernel, stage: number): Span[] {
  const lo = intervalStart(k, stage);
  const hi = intervalEnd(k, stage);
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

/** The last stage of the barrier interval holding `stage`. */
function intervalEnd(k: ScheduledKernel, stage: number): number {
  let hi = stage;
  while (hi < k.stages.length - 1 && !acrossWarps(k.barriers[hi])) hi++;
  return hi;
}

/** The first stage of the barrier interval holding `stage`: the stages no barrier separates run together. */
function intervalStart(k: ScheduledKernel, stage: number): number {
  let lo = stage;
  while (lo > 0 && !acrossWarps(k.barriers[lo - 1])) lo--;
  return lo;
}

/**
 * Synchronised kernels by the scheduled kernel and its products on tensor cores: every group of
 * tiles shares one. A scheduled kernel comes from one scheduler, so one key names its homes.
 */
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
 * per warp, and a warp runs them in turn). `withCopies`: the views' copies first. Undefined when it
 * does not fit.
 */
function placed(
  scheduled: ScheduledKernel,
  limits: TargetLimits,
  key: KernelPlan['homeKey'],
  operands: MmaOperands,
  groupTiles: number,
  withCopies: boolean,
): ScheduledKernel | undefined {
  const p = plan(scheduled, operands, groupTiles, withCopies);
  if (!p) return undefined;
  const k = withTiledProducts(scheduled, limits, key, p.products);
  let workgroupFloats = k.workgroupFloats;
  // Each view's copy first, in memory no warp uses from the view's staging to the last product
  // that reads it, apart from the other copies live then.
  const copies = new Map<number, OperandCopy>();
  const copySpans = (from: number, to: number): Span[] =>
    [...copies].flatMap(([node, c]) =>
      c.from <= to && from <= c.to ? [{ from: c.offset, to: c.offset + copyFloats(k, node) }] : [],
    );
  for (const node of p.copied) {
    const from = k.stages.findIndex((s) => s.kind === 'compute' && s.node === node);
    const to = Math.max(
      ...p.products.flatMap((id) =>
        (['a', 'b'] as const).some((role) => copiedOperand(k, id, role)?.node === node) ? [productStage(k, id)] : [],
      ),
    );
    const spans = [...copySpans(from, to)];
    for (let stage = from; stage <= to; stage++) spans.push(...busy(k, stage));
    const offset = firstGap(spans, copyFloats(k, node));
    copies.set(node, { offset, rowStride: copyRowStride(k.program.nodes[node].shape[1]), from, to });
    workgroupFloats = Math.max(workgroupFloats, offset + copyFloats(k, node));
  }
  const floats = stagingFloats(k, p.sizing);
  const byInterval = new Map<number, number>();
  const products = new Map<number, number>();
  for (const id of p.products) {
    const stage = productStage(k, id);
    const lo = intervalStart(k, stage);
    const offset = byInterval.get(lo) ?? firstGap([...busy(k, stage), ...copySpans(lo, intervalEnd(k, stage))], floats);
    byInterval.set(lo, offset);
    products.set(id, offset);
    workgroupFloats = Math.max(workgroupFloats, offset + floats);
  }
  if (workgroupFloats * 4 > limits.workgroupBytes) return undefined;
  return { ...k, workgroupFloats, tensorCores: { products, ...p.sizing, ...(copies.size > 0 ? { copies } : {}) } };
}

/**
 * The chunk scheduled with its qualifying products on tensor cores (see withTensorCores). Homes in
 * two slots (schedule.ts, TwoSlots) are weighed with the staging in place: the block barriers they
 * save without it may be ones the tensor-core stages need anyway, they take room the staging could
 * use, and the resident blocks a schedule counts without the staging are not those with it. So
 * the kernel is scheduled with one slot, with two where they pay, and with two wherever they save
 * barriers, and the best kept (betterSchedule) of those with as many products on tensor cores.
 * Warps take one tile at a time, or, where `groups` says which to keep, groups of tiles
 * (inTileGroups) once the slots are chosen.
 */
export function scheduleWithTensorCores(
  chunk: ChunkProgram,
  limits: TargetLimits,
  operands: MmaOperands = 'bf16',
  groups?: KeepGroup,
): ScheduledKernel {
  const [single, ...doubled] = (['never', 'paying', 'fewer-barriers'] as const).map((slots) => {
    const scheduleFor = (l: TargetLimits) => schedule(chunk, l, slots);
    return { scheduleFor, kernel: withTensorCores(scheduleFor, limits, homeKey, operands) };
  });
  const best = doubled
    .filter((k) => products(k.kernel) >= products(single.kernel))
    .reduce((best, k) => (betterSchedule(k.kernel, best.kernel, limits) ? k : best), single);
  return inTileGroups(best.kernel, limits, groups, (group) =>
    withGroup(best.scheduleFor, limits, homeKey, operands, group),
  );
}

/** Whether a kernel whose warps take groups of tiles may replace its single-tile kernel, besides the schedule's own tests. */
export type KeepGroup = (grouped: ScheduledKernel) => boolean;

/**
 * A kernel chosen with its warps taking single tiles (`chosen`: its block size among others),
 * finished by `ahead` (the read-ahead the renderer plans), or the same kernel scheduled again at
 * its block size by `grouped` with groups of tiles where one reads as many inputs ahead once
 * finished: a group's larger slices can take the room a read-ahead had. The block sizes weighed
 * are kept. Weighing every group at every block size and under every other choice made rendering
 * more than twice as slow.
 */
export function withTileGroupsAtSize(
  chosen: ScheduledKernel,
  limits: TargetLimits,
  grouped: (limits: TargetLimits, keep: KeepGroup) => ScheduledKernel,
  ahead: (k: ScheduledKernel) => ScheduledKernel = (k) => k,
): ScheduledKernel {
  const finished = new Map<ScheduledKernel, ScheduledKernel>();
  const finish = (k: ScheduledKernel) => finished.get(k) ?? finished.set(k, ahead(k)).get(k)!;
  if (!chosen.tensorCores) return finish(chosen);
  const readAhead = (k: ScheduledKernel) => finish(k).prefetch?.size ?? 0;
  const k = grouped({ ...limits, invocations: chosen.invocations }, (g) => readAhead(g) >= readAhead(chosen));
  if ((k.tensorCores?.groupTiles ?? 1) === 1) return finish(chosen);
  return chosen.blockSizes ? { ...finish(k), blockSizes: chosen.blockSizes } : finish(k);
}

const products = (k: ScheduledKernel) => k.tensorCores?.products.size ?? 0;

/**
 * Tiles a warp may take at once (TensorCorePlan.groupTiles) besides one, most first: a group
 * stages A's rows once for all its tiles, at the cost of B's rows for each in the warp's slice.
 */
const GROUP_TILES = [4, 2];

/**
 * `single`, a kernel whose warps take one tile at a time, or the same kernel scheduled by
 * `inGroup` with its warps taking the largest group of tiles that keeps as many products on
 * tensor cores, is as good a schedule (betterSchedule: blocks per SM, global memory, block
 * barriers) and that `keep` accepts: a group saves staging, but its slices take room. Single
 * tiles where `keep` is absent.
 */
function inTileGroups(
  single: ScheduledKernel,
  limits: TargetLimits,
  keep: KeepGroup | undefined,
  inGroup: (groupTiles: number) => ScheduledKernel,
): ScheduledKernel {
  const plan = single.tensorCores;
  if (!plan || !keep) return single;
  const warps = single.invocations / WARP_LANES;
  const useful = Math.max(
    ...[...plan.products.keys()].map((id) =>
      groupOf({ ...plan, groupTiles: GROUP_TILES[0] }, single.program.nodes[id].shape, warps),
    ),
  );
  for (const group of GROUP_TILES.filter((g) => g <= useful)) {
    const k = inGroup(group);
    if (products(k) >= products(single) && !betterSchedule(single, k, limits) && keep(k)) return k;
  }
  return single;
}

/**
 * A kernel scheduled by `scheduleFor` (the forward's scheduler, or the backward's, whose carried
 * values are keyed by `key`) with its qualifying products on tensor cores: the staging goes after
 * the scheduled buffers, and where on-chip memory is full, the buffers are scheduled again within
 * what the staging leaves (the rest goes to scratch). Warps take one tile at a time, or, where
 * `groups` says which to keep, groups of tiles (inTileGroups). Unchanged when no product qualifies.
 */
export function withTensorCores(
  scheduleFor: (limits: TargetLimits) => ScheduledKernel,
  limits: TargetLimits,
  key: KernelPlan['homeKey'],
  operands: MmaOperands,
  groups?: KeepGroup,
): ScheduledKernel {
  const single = withGroup(scheduleFor, limits, key, operands, 1);
  return inTileGroups(single, limits, groups, (group) => withGroup(scheduleFor, limits, key, operands, group));
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
  // The scheduler counts resident blocks without the staging, which may fit a gap or not: schedule
  // also as if each block took it whole. The views' copies save every warp's staging of them but
  // take room of their own: weigh the kernel without them too. The best is kept (layout.ts: more
  // blocks per SM, then less global memory, then fewer block barriers), with copies on a tie.
  const m = limits.multiprocessor;
  const best = (options: ScheduledKernel[]) =>
    options.reduce((best, k) => (betterSchedule(k, best, limits) ? k : best));
  const scheduled = (copies: boolean): ScheduledKernel[] => {
    const p = plan(plain, operands, groupTiles, copies);
    if (!p) return [];
    const staging = (stagingFloats(plain, p.sizing) + p.copied.reduce((t, node) => t + copyFloats(plain, node), 0)) * 4;
    const room = limits.workgroupBytes - staging - 16;
    // Without copies, a kernel whose staging fits nowhere keeps its products off tensor cores; with
    // them, it is no option (the kernel without copies is weighed instead).
    const withStaging = (l: TargetLimits) =>
      placed(scheduleFor(l), limits, key, operands, groupTiles, copies) ??
      (room > 0
        ? placed(scheduleFor({ ...l, workgroupBytes: room }), limits, key, operands, groupTiles, copies)
        : undefined) ??
      (copies ? undefined : scheduleFor(l));
    const reserved = m && { ...limits, multiprocessor: { ...m, reservedBytes: m.reservedBytes + staging } };
    return [withStaging(limits), ...(reserved ? [withStaging(reserved)] : [])].filter((k) => k !== undefined);
  };
  const p = plan(plain, operands, groupTiles);
  if (!p) return plain;
  const copying = p.copied.length > 0 ? scheduled(true) : [];
  if (copying.length === 0) return best(scheduled(false));
  const kept = best(copying);
  // Without copies a kernel holds no more blocks and no less scratch than with no staging at all.
  const asPlain =
    residentWorkgroups(limits, kept.workgroupFloats * 4) >= residentWorkgroups(limits, plain.workgroupFloats * 4) &&
    globalFloats(kept) <= globalFloats(plain);
  return asPlain ? kept : best([kept, ...scheduled(false)]);
}
