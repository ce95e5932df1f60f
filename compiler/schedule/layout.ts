/**
 * From a kernel's stages to its memory: buffer lifetimes, on-chip placement by reads per element,
 * homes of the carried values, register tiles and barriers. Shared by the forward (schedule.ts)
 * and the backward kernel (backward.ts), which differ in their stages and what they carry.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import { type Program, size } from '../ir/ir.ts';
import { acrossWarps, type MemoryMap, placeBarriers } from './barriers.ts';
import type { Carried, Home, Homes, Placement, ScheduledKernel, Stage, TargetLimits, WarpRows } from './kernel.ts';
import { chooseWarpRows } from './warp-rows.ts';
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
  /** Carried values no chunk hands to the next (their home is `ports`, see Home); absent: none. */
  passed?: readonly Carried[];
  /** States whose homes on chip take two slots (OnChipHome `pingPong`); absent: none. */
  pingPong?: ReadonlySet<string>;
  /**
   * Only where memory goes, each buffer held to its last reader: no warp rows, tiles or barriers
   * (`barriers` empty). A quick estimate that ranks program variants (recompute.ts).
   */
  estimate?: true;
}

export function layOut(chunk: ChunkProgram, p: Program, limits: TargetLimits, plan: KernelPlan): ScheduledKernel {
  const { buffered, stages, carried, homeKey } = plan;
  const kept = carried.filter((kind) => !plan.passed?.includes(kind));
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
  const slots = (state: string) => (plan.pingPong?.has(state) ? 2 : 1);
  const homeIntervals: Interval[] = chunk.layer.states.flatMap((s) =>
    kept.map((kind) => ({
      key: homeKey(kind, s.name),
      elements: slots(s.name) * size(s.shape),
      from: 0,
      to: stages.length,
    })),
  );
  const stateOfHome = new Map(chunk.layer.states.flatMap((s) => kept.map((kind) => [homeKey(kind, s.name), s])));
  const onChipHome = (key: string, offset: number): Home =>
    slots(stateOfHome.get(key)!.name) === 2
      ? { space: 'workgroup', offset, pingPong: true }
      : { space: 'workgroup', offset };
  // The four placements below often spill the same buffers (no chain to write in place, homes that
  // fit either way), and packing thousands of them (a deep spec) takes seconds: pack each set once.
  const packed = new Map<string, ReturnType<typeof packScratch>>();
  /**
   * Places every buffer and home, each buffer held to `to(its last read)`; a buffer written over
   * its operand's (`over`) takes that buffer, so a chain is one interval. On chip by reads per
   * element, or the carried values first (`homesFirst`: a home in global memory is read and
   * written back every chunk); what does not fit goes to scratch.
   */
  const placeAll = (over: ReadonlyMap<number, number>, to: (lastRead: number) => number, homesFirst: boolean) => {
    const holder = (id: number): number => {
      let at = id;
      while (over.has(at)) at = over.get(at)!;
      return at;
    };
    const groups = new Map<number, Interval & { reads: number }>();
    for (const id of buffered) {
      const from = stageOf.get(id)!;
      const until = to(lastRead.get(id) ?? from);
      const key = holder(id);
      const g = groups.get(key);
      const r = reads.get(id) ?? 0;
      if (g) groups.set(key, { ...g, from: Math.min(g.from, from), to: Math.max(g.to, until), reads: g.reads + r });
      else groups.set(key, { key, elements: size(p.nodes[id].shape), from, to: until, reads: r });
    }
    const readsOf = (iv: Interval) =>
      typeof iv.key === 'string' ? (reads.get(iv.key) ?? 0) : groups.get(iv.key)!.reads;
    const density = (iv: Interval) => readsOf(iv) / iv.elements;
    const isHome = (iv: Interval) => (homesFirst && typeof iv.key === 'string' ? 1 : 0);
    const candidates = [...groups.values(), ...homeIntervals].sort(
      (a, b) => isHome(b) - isHome(a) || density(b) - density(a) || a.elements - b.elements,
    );
    const chip = new Arena(Math.floor(limits.workgroupBytes / F32_BYTES));
    const placements = new Map<number, Placement>();
    const homePlaces = new Map<string, Home>(
      chunk.layer.states.flatMap((s) => (plan.passed ?? []).map((kind) => [homeKey(kind, s.name), { space: 'ports' }])),
    );
    const spilled: Interval[] = [];
    for (const iv of candidates) {
      const offset = chip.place(iv);
      if (offset === undefined) {
        if (typeof iv.key === 'string') homePlaces.set(iv.key, { space: 'global' });
        else spilled.push(iv);
      } else if (typeof iv.key === 'string') homePlaces.set(iv.key, onChipHome(iv.key, offset));
      else placements.set(iv.key, { space: 'workgroup', offset });
    }
    const spilledKey = spilled.map((iv) => `${iv.key}:${iv.elements}:${iv.from}:${iv.to}`).join();
    const scratch = packed.get(spilledKey) ?? packScratch(spilled);
    packed.set(spilledKey, scratch);
    for (const [key, offset] of scratch.offsets) placements.set(key, { space: 'scratch', offset });
    const buffers = new Map<number, Placement>([...buffered].map((id) => [id, placements.get(holder(id))!]));
    const inPlace = new Map([...over].flat().map((id) => [id, holder(id)]));
    const globalHomes = homeIntervals.filter((iv) => homePlaces.get(iv.key as string)!.space === 'global');
    // A home in global memory is updated in place: one slot.
    const globalFloats =
      scratch.used + globalHomes.reduce((n, iv) => n + size(stateOfHome.get(iv.key as string)!.shape), 0);
    return { buffers, homePlaces, workgroupFloats: chip.used, scratchFloats: scratch.used, globalFloats, inPlace };
  };
  // In place or apart, homes first or not: whichever leaves the least global memory read and
  // written per chunk (then on-chip use): a longer interval for a chain can fragment the packing
  // more than the buffer it saves, and a home is worth more on chip than its reads alone say.
  const overOperands = inPlaceOperands(p, stages, (x) => buffered.has(x), lastRead);
  const place = (to: (lastRead: number) => number) =>
    [overOperands, new Map<number, number>()]
      .flatMap((over) => [false, true].map((homesFirst) => placeAll(over, to, homesFirst)))
      .reduce((best, x) =>
        x.globalFloats < best.globalFloats ||
        (x.globalFloats === best.globalFloats && x.workgroupFloats < best.workgroupFloats)
          ? x
          : best,
      );
  // Where warps own rows, memory held to the next block barrier saves the barriers sharing it
  // sooner would need, unless it costs global memory or resident workgroups.
  const plain = place((i) => i);
  if (plan.estimate) return estimated(chunk, p, limits, plan, plain);
  const warpRows = chooseWarpRows(p, stages, (id) => buffered.has(id), limits.invocations, limits.lanes);
  const held = warpRows.size > 0 ? place(heldThrough(chunk, p, plan, warpRows)) : plain;
  const resident = (floats: number) => residentWorkgroups(limits, floats * F32_BYTES);
  const { buffers, homePlaces, workgroupFloats, scratchFloats, inPlace } =
    held.globalFloats <= plain.globalFloats && resident(held.workgroupFloats) >= resident(plain.workgroupFloats)
      ? held
      : plain;
  const homes = homesOf(chunk, plan, homePlaces);

  const tiles = new Map<number, Tile>();
  for (const n of p.nodes) {
    if (n.op.kind !== 'matmul') continue;
    const r = n.shape.length;
    tiles.set(n.id, chooseTile(n.shape[r - 2], n.shape[r - 1], size(n.shape.slice(0, r - 2)), limits.invocations));
  }
  const laidOut = {
    chunk,
    program: p,
    invocations: limits.invocations,
    buffers,
    states: homes,
    stages,
    tiles,
    workgroupFloats,
    scratchFloats,
    inPlace,
  };
  return { ...laidOut, ...synchronise(laidOut, limits.lanes, homeKey) };
}

/** Each state's homes, from where each carried value's home was placed. */
function homesOf(chunk: ChunkProgram, plan: KernelPlan, placed: ReadonlyMap<string, Home>): Map<string, Homes> {
  return new Map(
    chunk.layer.states.map((s) => [
      s.name,
      Object.fromEntries(plan.carried.map((kind) => [kind, placed.get(plan.homeKey(kind, s.name))!])) as Homes,
    ]),
  );
}

/** The kernel of KernelPlan `estimate`: the placement, and no tiles or barriers. */
function estimated(
  chunk: ChunkProgram,
  p: Program,
  limits: TargetLimits,
  plan: KernelPlan,
  placed: Pick<ScheduledKernel, 'buffers' | 'workgroupFloats' | 'scratchFloats' | 'inPlace'> & {
    homePlaces: ReadonlyMap<string, Home>;
  },
): ScheduledKernel {
  const states = homesOf(chunk, plan, placed.homePlaces);
  const { buffers, workgroupFloats, scratchFloats, inPlace } = placed;
  const { invocations } = limits;
  return {
    chunk,
    program: p,
    invocations,
    buffers,
    states,
    stages: plan.stages,
    tiles: new Map(),
    workgroupFloats,
    scratchFloats,
    inPlace,
    barriers: [],
  };
}

/** Floats of global memory a chunk reads and writes back: the scratch slice and the homes kept in place in global memory. */
export function globalFloats(k: ScheduledKernel): number {
  let floats = k.scratchFloats;
  for (const s of k.chunk.layer.states)
    for (const h of Object.values(k.states.get(s.name)!)) if (h.space === 'global') floats += size(s.shape);
  return floats;
}

/**
 * Whether schedule `a` of a chunk is better than `b`: more workgroups resident per multiprocessor,
 * then less global memory read and written per chunk, then fewer workgroup barriers.
 */
export function betterSchedule(a: ScheduledKernel, b: ScheduledKernel, limits: TargetLimits): boolean {
  const cost = (k: ScheduledKernel) => [
    -residentWorkgroups(limits, k.workgroupFloats * F32_BYTES),
    globalFloats(k),
    k.barriers.filter(acrossWarps).length,
  ];
  const [x, y] = [cost(a), cost(b)];
  const i = x.findIndex((v, j) => v !== y[j]);
  return i >= 0 && x[i] < y[i];
}

/** Workgroups that on-chip memory lets a multiprocessor hold at once; unbounded where the target does not say. */
export function residentWorkgroups(limits: TargetLimits, bytes: number): number {
  const m = limits.multiprocessor;
  return m ? Math.floor(m.bytes / (Math.ceil(bytes / m.granule) * m.granule + m.reservedBytes)) : Infinity;
}

/**
 * The warp rows (warp-rows.ts) and barriers (barriers.ts) of a laid-out kernel. `onTensorCores`:
 * the nodes whose stages warps compute on tensor-core tiles (a product, or the state of an update
 * whose product is there), which own no rows.
 */
export function synchronise(
  k: Omit<ScheduledKernel, 'barriers' | 'warpRows'>,
  lanes: number | undefined,
  homeKey: KernelPlan['homeKey'],
  onTensorCores: ReadonlySet<number> = new Set(),
): Pick<ScheduledKernel, 'barriers' | 'warpRows'> {
  const isBuffered = (id: number) => k.buffers.has(id);
  const warpRows = chooseWarpRows(k.program, k.stages, isBuffered, k.invocations, lanes, onTensorCores);
  const memory = memoryMap(k.chunk, k.program, k.buffers, k.states, homeKey, warpRows);
  return { barriers: placeBarriers(memory, k.stages), ...(warpRows.size > 0 ? { warpRows } : {}) };
}

/** What barrier placement reads of a kernel's memory: where each buffer and home is, and which program input each home holds. */
function memoryMap(
  chunk: ChunkProgram,
  program: Program,
  buffers: ReadonlyMap<number, Placement>,
  homes: ReadonlyMap<string, Homes>,
  homeKey: KernelPlan['homeKey'],
  warpRows: ReadonlyMap<number, WarpRows>,
): MemoryMap {
  const states = chunk.layer.states;
  const homeInputs = new Map(
    states.flatMap((s) =>
      (Object.keys(homes.get(s.name)!) as Carried[]).map(
        (kind) => [homeKey(kind, s.name), { kind, name: s.name }] as const,
      ),
    ),
  );
  const stateSize = new Map(states.map((s) => [s.name, size(s.shape)]));
  return { program, buffers, homes, stateSize, homeInputs, warpRows };
}

/**
 * Where warps own rows, another warp may still be reading a buffer after its last reader's stage
 * (only a workgroup barrier tells), so its memory is held until the next workgroup barrier: where
 * that is, placed as if no two buffers shared memory (then every barrier is one the data needs).
 * Memory shared any sooner would need a workgroup barrier of its own.
 */
function heldThrough(
  chunk: ChunkProgram,
  p: Program,
  plan: KernelPlan,
  warpRows: ReadonlyMap<number, WarpRows>,
): (lastRead: number) => number {
  let offset = 0;
  const own = (elements: number): Placement => {
    const at = { space: 'workgroup' as const, offset };
    offset += elements;
    return at;
  };
  const ownHome = (state: string, elements: number): Home =>
    plan.pingPong?.has(state) ? { ...own(2 * elements), pingPong: true } : own(elements);
  const buffers = new Map([...plan.buffered].map((id) => [id, own(size(p.nodes[id].shape))]));
  const homes = new Map(
    chunk.layer.states.map((s) => [
      s.name,
      Object.fromEntries(
        plan.carried.map((kind): [Carried, Home] => [
          kind,
          plan.passed?.includes(kind) ? { space: 'ports' } : ownHome(s.name, size(s.shape)),
        ]),
      ) as Homes,
    ]),
  );
  const barriers = placeBarriers(memoryMap(chunk, p, buffers, homes, plan.homeKey, warpRows), plan.stages);
  return (lastRead) => {
    let i = lastRead;
    while (!acrossWarps(barriers[i])) i++;
    return i;
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
