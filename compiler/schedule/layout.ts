/**
 * From a kernel's stages to its memory: buffer lifetimes, on-chip placement by reads per element,
 * homes of the carried values, register tiles and barriers. Shared by the forward (schedule.ts)
 * and the backward kernel (backward.ts), which differ in their stages and what they carry.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import { type Program, size } from '../ir/ir.ts';
import { type MemoryMap, placeBarriers } from './barriers.ts';
import type { Carried, Home, Homes, Placement, ScheduledKernel, Stage, TargetLimits, WarpRows } from './kernel.ts';
import { chooseWarpRows } from './warp-rows.ts';
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
  const place = (to: (lastRead: number) => number) =>
    placeOnChip(
      limits,
      [...buffered].map((id) => ({
        key: id,
        elements: size(p.nodes[id].shape),
        from: stageOf.get(id)!,
        to: to(lastRead.get(id) ?? stageOf.get(id)!),
      })),
      chunk.layer.states.flatMap((s) =>
        carried.map((kind) => ({ key: homeKey(kind, s.name), elements: size(s.shape), from: 0, to: stages.length })),
      ),
      reads,
    );
  // Where warps own rows, memory held to the next block barrier saves the barriers sharing it
  // sooner would need, unless it costs scratch (global memory) or resident workgroups.
  const plain = place((i) => i);
  const warpRows = chooseWarpRows(p, stages, (id) => buffered.has(id), limits.invocations, limits.lanes);
  const held = warpRows.size > 0 ? place(heldThrough(chunk, p, plan, warpRows)) : plain;
  const resident = (floats: number) => residentWorkgroups(limits, floats * F32_BYTES);
  const { buffers, homePlaces, chip, scratch } =
    held.scratch.used <= plain.scratch.used && resident(held.chip.used) >= resident(plain.chip.used) ? held : plain;
  const homes = new Map<string, Homes>(
    chunk.layer.states.map((s) => [
      s.name,
      Object.fromEntries(carried.map((kind) => [kind, homePlaces.get(homeKey(kind, s.name))!])) as Homes,
    ]),
  );

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
    workgroupFloats: chip.used,
    scratchFloats: scratch.used,
  };
  return { ...laidOut, ...synchronise(laidOut, limits.lanes, homeKey) };
}

/**
 * Buffers and homes placed on chip first-fit, what is read most per element first; what does not
 * fit goes to global memory (scratch for buffers, the output ports for homes).
 */
function placeOnChip(
  limits: TargetLimits,
  temporaries: Interval[],
  homeIntervals: Interval[],
  reads: ReadonlyMap<number | HomeKey, number>,
) {
  const density = (iv: Interval) => (reads.get(iv.key as number | HomeKey) ?? 0) / iv.elements;
  const candidates = [...temporaries, ...homeIntervals].sort(
    (a, b) => density(b) - density(a) || a.elements - b.elements,
  );
  const chip = new Arena(Math.floor(limits.workgroupBytes / F32_BYTES));
  const scratch = new Arena(Number.MAX_SAFE_INTEGER);
  const buffers = new Map<number, Placement>();
  const homePlaces = new Map<string, Home>();
  for (const iv of candidates) {
    const offset = chip.place(iv);
    const onChip = offset === undefined ? undefined : { space: 'workgroup' as const, offset };
    if (typeof iv.key === 'string') homePlaces.set(iv.key, onChip ?? { space: 'global' });
    else buffers.set(iv.key, onChip ?? { space: 'scratch', offset: scratch.place(iv)! });
  }
  return { buffers, homePlaces, chip, scratch };
}

/** Workgroups that on-chip memory lets a multiprocessor hold at once; unbounded where the target does not say. */
export function residentWorkgroups(limits: TargetLimits, bytes: number): number {
  const m = limits.multiprocessor;
  return m ? Math.floor(m.bytes / (Math.ceil(bytes / m.granule) * m.granule + m.reservedBytes)) : Infinity;
}

/**
 * The warp rows (warp-rows.ts) and barriers (barriers.ts) of a laid-out kernel. `onTensorCores`:
 * products computed by warps on tensor-core tiles, which own no rows.
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
  const buffers = new Map([...plan.buffered].map((id) => [id, own(size(p.nodes[id].shape))]));
  const homes = new Map(
    chunk.layer.states.map((s) => [
      s.name,
      Object.fromEntries(plan.carried.map((kind) => [kind, own(size(s.shape))])) as Homes,
    ]),
  );
  const barriers = placeBarriers(memoryMap(chunk, p, buffers, homes, plan.homeKey, warpRows), plan.stages);
  return (lastRead) => {
    let i = lastRead;
    while (barriers[i] !== 'workgroup' && barriers[i] !== 'storage') i++;
    return i;
  };
}
