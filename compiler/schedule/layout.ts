/**
 * From a kernel's stages to its memory: buffer lifetimes, on-chip placement by reads per element,
 * homes of the carried values, register tiles and barriers. Shared by the forward (schedule.ts)
 * and the backward kernel (backward.ts), which differ in their stages and what they carry.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import { type Program, size } from '../ir/ir.ts';
import { placeBarriers } from './barriers.ts';
import type { Carried, Home, Homes, Placement, ScheduledKernel, Stage, TargetLimits } from './kernel.ts';
import { inPlaceOperands } from './in-place.ts';
import { Arena, type Interval } from './place.ts';
import { stageReads } from './reads.ts';
import { chooseTile, type Tile } from './tiles.ts';
import { type HomeKey, readsPerChunk } from './traffic.ts';

const F32_BYTES = 4;

export interface KernelPlan {
  /** Nodes computed into buffers (in `compute` stages). */
  buffered: ReadonlySet<number>;
  stages: Stage[];
  /** What each state tensor carries from chunk to chunk. */
  carried: readonly Carried[];
  /** The program input a carried value's home holds. */
  homeKey: (kind: Carried, state: string) => HomeKey;
}

export function layOut(chunk: ChunkProgram, p: Program, limits: TargetLimits, plan: KernelPlan): ScheduledKernel {
  const { buffered, stages, carried, homeKey } = plan;
  // A buffer lives from its stage to the last stage that reads it, through inlined nodes.
  const stageOf = new Map<number, number>();
  stages.forEach((s, i) => {
    if (s.kind === 'compute') stageOf.set(s.node, i);
  });
  const lastRead = new Map<number, number>();
  stages.forEach((s, i) => {
    for (const id of stageReads(s, p, (x) => buffered.has(x))) if (buffered.has(id)) lastRead.set(id, i);
  });

  // On-chip memory goes to what is read most per element: temporaries for their live range,
  // states and accumulators for the whole kernel. What does not fit goes to global memory.
  const reads = readsPerChunk(
    p,
    stages,
    buffered,
    new Set(chunk.layer.states.flatMap((s) => carried.map((kind) => homeKey(kind, s.name)))),
  );
  const homeIntervals: Interval[] = chunk.layer.states.flatMap((s) =>
    carried.map((kind) => ({
      key: homeKey(kind, s.name),
      elements: size(s.shape),
      from: 0,
      to: stages.length,
    })),
  );
  /**
   * Places every buffer and home; a buffer written over its operand's (`over`) takes that buffer,
   * so a chain is one interval. On chip by reads per element; what does not fit goes to scratch.
   */
  const placeAll = (over: ReadonlyMap<number, number>) => {
    const holder = (id: number): number => {
      let at = id;
      while (over.has(at)) at = over.get(at)!;
      return at;
    };
    const groups = new Map<number, Interval & { reads: number }>();
    for (const id of buffered) {
      const from = stageOf.get(id)!;
      const to = lastRead.get(id) ?? from;
      const key = holder(id);
      const g = groups.get(key);
      const r = reads.get(id) ?? 0;
      if (g) groups.set(key, { ...g, from: Math.min(g.from, from), to: Math.max(g.to, to), reads: g.reads + r });
      else groups.set(key, { key, elements: size(p.nodes[id].shape), from, to, reads: r });
    }
    const readsOf = (iv: Interval) =>
      typeof iv.key === 'string' ? (reads.get(iv.key) ?? 0) : groups.get(iv.key)!.reads;
    const density = (iv: Interval) => readsOf(iv) / iv.elements;
    const candidates = [...groups.values(), ...homeIntervals].sort(
      (a, b) => density(b) - density(a) || a.elements - b.elements,
    );
    const chip = new Arena(Math.floor(limits.workgroupBytes / F32_BYTES));
    const placements = new Map<number, Placement>();
    const homePlaces = new Map<string, Home>();
    const spilled: Interval[] = [];
    for (const iv of candidates) {
      const offset = chip.place(iv);
      if (offset === undefined) {
        if (typeof iv.key === 'string') homePlaces.set(iv.key, { space: 'global' });
        else spilled.push(iv);
      } else if (typeof iv.key === 'string') homePlaces.set(iv.key, { space: 'workgroup', offset });
      else placements.set(iv.key, { space: 'workgroup', offset });
    }
    const scratch = packScratch(spilled);
    for (const [key, offset] of scratch.offsets) placements.set(key, { space: 'scratch', offset });
    const buffers = new Map<number, Placement>([...buffered].map((id) => [id, placements.get(holder(id))!]));
    const inPlace = new Map([...over].flat().map((id) => [id, holder(id)]));
    return { buffers, homePlaces, workgroupFloats: chip.used, scratchFloats: scratch.used, inPlace };
  };
  // In place where it leaves the smaller scratch slice (then on-chip use): a longer interval for
  // the chain can fragment the packing more than the buffer it saves.
  const inPlace = placeAll(inPlaceOperands(p, stages, (x) => buffered.has(x), lastRead));
  const apart = placeAll(new Map());
  const smaller =
    apart.scratchFloats < inPlace.scratchFloats ||
    (apart.scratchFloats === inPlace.scratchFloats && apart.workgroupFloats < inPlace.workgroupFloats);
  const { buffers, homePlaces, workgroupFloats, scratchFloats, inPlace: sharedInPlace } = smaller ? apart : inPlace;
  const homes = new Map<string, Homes>(
    chunk.layer.states.map((s) => [
      s.name,
      Object.fromEntries(carried.map((kind) => [kind, homePlaces.get(homeKey(kind, s.name))!])) as Homes,
    ]),
  );

  const stateSize = new Map(chunk.layer.states.map((s) => [s.name, size(s.shape)]));
  const homeInputs = new Map(
    chunk.layer.states.flatMap((s) => carried.map((kind) => [homeKey(kind, s.name), { kind, name: s.name }] as const)),
  );
  const tiles = new Map<number, Tile>();
  for (const n of p.nodes) {
    if (n.op.kind !== 'matmul') continue;
    const r = n.shape.length;
    tiles.set(n.id, chooseTile(n.shape[r - 2], n.shape[r - 1], size(n.shape.slice(0, r - 2)), limits.invocations));
  }
  return {
    chunk,
    program: p,
    invocations: limits.invocations,
    buffers,
    states: homes,
    stages,
    tiles,
    barriers: placeBarriers({ program: p, buffers, homes, stateSize, homeInputs }, stages),
    workgroupFloats,
    scratchFloats,
    inPlace: sharedInPlace,
  };
}

/**
 * Scratch offsets for the buffers that do not fit on chip. Packing intervals of different sizes
 * is NP-hard and no one greedy order packs every kernel best (measured over the examples' forward
 * and backward kernels at K = 64 to 2048): largest first keeps the K×K buffers from being pushed up
 * by small ones placed before them, earliest first fills the slice as lives begin, the on-chip
 * order (reads per element) or the latest-ending first sometimes win by a quarter; best-fit beats
 * first-fit now and then. Each packing is cheap, so all are tried and the smallest slice kept.
 */
function packScratch(spilled: readonly Interval[]): { offsets: Map<number, number>; used: number } {
  const length = (iv: Interval) => iv.to - iv.from + 1;
  const orders: Interval[][] = [
    [...spilled].sort((a, b) => b.elements - a.elements || a.from - b.from),
    [...spilled].sort((a, b) => b.elements - a.elements || b.from - a.from),
    [...spilled].sort((a, b) => b.elements - a.elements || length(b) - length(a)),
    [...spilled].sort((a, b) => b.elements * length(b) - a.elements * length(a)),
    [...spilled].sort((a, b) => a.from - b.from || b.elements - a.elements),
    [...spilled].sort((a, b) => b.to - a.to || b.elements - a.elements),
    [...spilled],
  ];
  let best: { offsets: Map<number, number>; used: number } | undefined;
  for (const fit of ['first', 'best'] as const)
    for (const order of orders) {
      const arena = new Arena(Number.MAX_SAFE_INTEGER, fit);
      const offsets = new Map(order.map((iv) => [iv.key as number, arena.place(iv)!]));
      if (!best || arena.used < best.used) best = { offsets, used: arena.used };
    }
  return best!;
}
