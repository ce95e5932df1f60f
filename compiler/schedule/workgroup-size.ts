/**
 * How many invocations (threads) the workgroup of one (sequence, head) has, chosen from the sizes.
 * A small head's stages have few elements each: a large workgroup leaves most of its invocations
 * idle at every stage, and pays every block barrier for little work, while a smaller one lets a
 * multiprocessor hold more heads at once, whose barriers then hide one another. A large head keeps
 * the largest workgroup: its stages keep every invocation busy, and fewer invocations would only
 * lengthen each head's walk.
 *
 * The choice comes from a static model of a multiprocessor's cycles per head and mini-batch
 * (`rateBlockSize`), weighed over workgroups of a warp, two, four and so on up to
 * the target's limit. The model also sees what smaller workgroups gain in larger register tiles
 * (schedule/tiles.ts): fewer loads from on-chip memory, whose bandwidth bounds a full
 * multiprocessor. Its constants are round figures for sm_80 and sm_90 (FFMA and mma latencies,
 * shared memory's bandwidth), not fitted to measurements: a target without a multiprocessor model
 * (WGSL) keeps its limit, and a user who has timed the kernels on their GPU can fix the count
 * instead (`threads` in the CUDA target's options).
 */
import { type Program, size } from '../ir/ir.ts';
import { acrossWarps } from './barriers.ts';
import { inlineCost } from './fusion.ts';
import type { RatedBlockSize, ScheduledKernel, Stage, TargetLimits, WarpRows } from './kernel.ts';
import { sumLanes } from './sum-lanes.ts';
import type { Tile } from './tiles.ts';
import { residentWorkgroups } from './layout.ts';
import { groupOf, mmaTile, productExtents, productStage, WARP_LANES } from './tensor-cores.ts';

/**
 * Cycles an invocation spends per term (a load, an add or multiply) on its own path: a warp issues
 * at most one instruction a cycle, and an FFMA's 4-cycle latency stalls it where its terms chain
 * through one accumulator (a product's term is two loads and an FFMA).
 */
const CYCLES_PER_TERM = 2;
/**
 * Warp-wide terms a multiprocessor completes per cycle, all its workgroups together: bounded by
 * shared memory's bandwidth (128 bytes a cycle, one warp-wide f32 load), as about two in three
 * terms are loads.
 */
const TERMS_PER_CYCLE = 1.5;
/** Cycles a warp waits at a block barrier beyond its own work: the barrier's latency and the skew of the warps' arrivals. */
const BARRIER_CYCLES = 32;
/** Terms one step of a butterfly of lane exchanges costs: the shuffle's latency and the add. */
const TERMS_PER_EXCHANGE = 2;
/** Cycles of one warp-level mma, as a warp's steps of one tile chain through its accumulator. */
const MMA_CYCLES = 32;
/**
 * How much less regret a smaller workgroup must promise than the largest within it: the model's
 * constants are round figures, so a difference of a few percent is within its error, and the
 * larger workgroup walks each head faster.
 */
export const MARGIN = 1.25;

/**
 * The kernel of the workgroup size with the least regret over the grids it may be launched on: a
 * grid of many heads keeps every multiprocessor full, and there the cycles per head count
 * (`full`); a grid of fewer heads than multiprocessors leaves one head on each, and there one
 * head's walk counts (`alone`). Each size is rated by the worse of its two ratios
 * to the best size of each, and the largest kept whose rating is within MARGIN of the least. A
 * kernel of one-row chunks (decode: one token per launch, whose time is its latency) keeps the
 * target's limit, as does a target without a multiprocessor model.
 */
export function chooseWorkgroupSize(
  scheduleAt: (limits: TargetLimits) => ScheduledKernel,
  limits: TargetLimits,
): ScheduledKernel {
  const largest = scheduleAt(limits);
  if (!limits.multiprocessor || !limits.lanes || largest.chunk.rows === 1) return largest;
  const rated = workgroupSizes(limits).map((invocations) => {
    const k = invocations === limits.invocations ? largest : scheduleAt({ ...limits, invocations });
    return { k, ...rateBlockSize(k, limits) };
  });
  const bestFull = Math.min(...rated.map((r) => r.full));
  const bestAlone = Math.min(...rated.map((r) => r.alone));
  const regret = (r: (typeof rated)[number]) => Math.max(r.full / bestFull, r.alone / bestAlone);
  const least = Math.min(...rated.map(regret));
  const chosen = rated.filter((r) => regret(r) <= least * MARGIN).at(-1)!.k;
  return { ...chosen, blockSizes: rated.map(({ invocations, full, alone }) => ({ invocations, full, alone })) };
}

/** The workgroup sizes weighed, smallest first: a warp, and twice as many up to the limit. */
export function workgroupSizes(limits: TargetLimits): number[] {
  const out: number[] = [];
  for (let n = Math.min(limits.lanes ?? limits.invocations, limits.invocations); n <= limits.invocations; n *= 2)
    out.push(n);
  return out;
}

/**
 * Workgroups a multiprocessor holds at once: as many as its on-chip memory, its invocations and
 * its workgroup slots allow; unbounded where the target does not say.
 */
export function residentHeads(limits: TargetLimits, k: ScheduledKernel): number {
  const m = limits.multiprocessor;
  const byMemory = residentWorkgroups(limits, k.workgroupFloats * 4);
  if (!m) return byMemory;
  return Math.max(1, Math.min(byMemory, Math.floor(m.invocations / k.invocations), m.workgroups));
}

/**
 * The model's cycles of a multiprocessor per head and mini-batch. `alone`: one head on it, taking
 * its invocations' longest path, or its terms' time. `full`: as many heads as it holds, walking
 * side by side, each its own path, unless the terms of all of them together take longer.
 */
export function rateBlockSize(k: ScheduledKernel, limits: TargetLimits): RatedBlockSize {
  const { path, terms } = walk(k, limits);
  const issue = terms / TERMS_PER_CYCLE;
  return {
    invocations: k.invocations,
    full: Math.max(path / residentHeads(limits, k), issue),
    alone: Math.max(path, issue),
  };
}

/**
 * A mini-batch of one head: its invocations' longest path in cycles (their share of every stage's
 * elements, the block barriers), and its warp-wide terms (all its elements' terms over a warp's
 * lanes; a tensor-core tile's instructions).
 */
function walk(k: ScheduledKernel, limits: TargetLimits): { path: number; terms: number } {
  const lanes = limits.lanes ?? k.invocations;
  const warps = Math.max(1, k.invocations / lanes);
  const cost = termCosts(k.program, (id) => k.buffers.has(id));
  const onTensorCores = tensorCoreStages(k);
  // A block of one warp waits for no other warp at its barriers.
  let path = warps > 1 ? k.barriers.filter(acrossWarps).length * BARRIER_CYCLES : 0;
  let terms = 0;
  k.stages.forEach((s, i) => {
    const mma = onTensorCores.get(i);
    if (mma) {
      path += Math.ceil(mma.tiles / warps) * mma.tileCycles;
      terms += mma.tiles * mma.tileInstructions;
      return;
    }
    const rows = k.warpRows?.get(i);
    const tile = rows?.tile ?? (s.kind === 'compute' ? k.tiles.get(s.node) : undefined);
    const { elements, perElement } = stageWork(k, s, cost, tile);
    const perTile = tile ? tile.rows * tile.cols : 1;
    const summed = s.kind === 'compute' ? sumWork(k, s.node, elements, perElement, limits.lanes, rows) : undefined;
    const share = rows
      ? Math.ceil((rows.rowsPerWarp * rows.rowElements) / perTile / rows.lanes) * perTile * perElement
      : Math.ceil(elements / perTile / k.invocations) * perTile * perElement;
    path += (summed ?? share) * CYCLES_PER_TERM;
    terms += (elements * perElement) / lanes;
  });
  return { path, terms };
}

/**
 * An invocation's terms in a sum stage whose elements groups of lanes share (sum-lanes.ts): its
 * group's elements, each its share of the terms and a butterfly of exchanges; undefined where each
 * element is one invocation's.
 */
function sumWork(
  k: ScheduledKernel,
  id: number,
  elements: number,
  perElement: number,
  lanes: number | undefined,
  rows: WarpRows | undefined,
): number | undefined {
  const n = k.program.nodes[id];
  if (n.op.kind !== 'sum') return undefined;
  const reduced = size(k.program.nodes[n.args[0]].shape) / Math.max(1, elements);
  const width = sumLanes(reduced, elements, k.invocations, lanes, rows);
  if (width === 1) return undefined;
  const perGroup = Math.ceil(reduced / width) * (perElement / reduced) + Math.log2(width) * TERMS_PER_EXCHANGE;
  return (rows ? rows.rowsPerWarp : Math.ceil(elements / (k.invocations / width))) * perGroup;
}

/**
 * A stage's elements and the terms each costs, its inlined operands recomputed; a product computed
 * in register tiles loads each operand element once for the tile's columns (A) or rows (B).
 */
function stageWork(
  k: ScheduledKernel,
  s: Stage,
  cost: readonly number[],
  tile: Tile | undefined,
): { elements: number; perElement: number } {
  const p = k.program;
  if (s.kind === 'update') {
    const roots = [s.stateNode, s.accumNode, ...(s.optNode === undefined ? [] : [s.optNode])];
    return { elements: size(p.nodes[s.stateNode].shape), perElement: roots.reduce((t, id) => t + own(p, id, cost), 0) };
  }
  const n = p.nodes[s.node];
  const perElement =
    tile && n.op.kind === 'matmul'
      ? p.nodes[n.args[0]].shape.at(-1)! * (cost[n.args[0]] / tile.cols + cost[n.args[1]] / tile.rows + 1)
      : own(p, s.node, cost);
  return { elements: size(n.shape), perElement };
}

/**
 * Each node's terms per element as a reader computes it: a buffered node is one load, an inlined
 * one its own terms (own) with its operands'. In node order, which is topological.
 */
function termCosts(p: Program, isBuffered: (id: number) => boolean): number[] {
  const cost: number[] = [];
  for (const n of p.nodes) cost[n.id] = isBuffered(n.id) ? 1 : own(p, n.id, cost);
  return cost;
}

/**
 * A node's terms per element given its operands' (`cost`): a product or sum repeats its operands'
 * per term; anything else costs what recomputing it inline does (fusion.ts).
 */
function own(p: Program, id: number, cost: readonly number[]): number {
  const n = p.nodes[id];
  const terms = (reduced: number) => reduced * (n.args.reduce((t, a) => t + cost[a], 0) + 1);
  if (n.op.kind === 'matmul') return terms(p.nodes[n.args[0]].shape.at(-1)!);
  if (n.op.kind === 'sum') return terms(size(p.nodes[n.args[0]].shape) / Math.max(1, size(n.shape)));
  return inlineCost(n, cost);
}

/** The stages whose product warps compute on tensor-core tiles: tiles, and a tile's cycles and instructions. */
function tensorCoreStages(
  k: ScheduledKernel,
): Map<number, { tiles: number; tileCycles: number; tileInstructions: number }> {
  const out = new Map<number, { tiles: number; tileCycles: number; tileInstructions: number }>();
  const plan = k.tensorCores;
  if (!plan) return out;
  const t = mmaTile(plan.operands);
  const mmas = plan.operands === 'tf32x3' ? 3 : 1;
  for (const id of plan.products.keys()) {
    const e = productExtents(k, id);
    const shape = k.program.nodes[id].shape;
    const batch = size(shape) / (e.m * e.n);
    const group = groupOf(plan, shape, k.invocations / WARP_LANES);
    const steps = Math.ceil(e.contraction / t.k);
    // A step stages the group's 16 + 8 per tile operand rows (each lane a 32nd), and loads and
    // multiplies the fragments: A's once, B's per tile.
    const staged = ((t.m + t.n * group) * t.k) / 32;
    out.set(productStage(k, id), {
      tiles: batch * Math.ceil(e.m / t.m) * Math.ceil(e.n / (t.n * group)),
      tileCycles: steps * (group * mmas * MMA_CYCLES + staged * CYCLES_PER_TERM),
      tileInstructions: steps * (group * (mmas + 1) + 1 + staged),
    });
  }
  return out;
}
