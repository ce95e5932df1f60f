/**
 * From a kernel's stages to its memory: buffer lifetimes, on-chip placement by reads per element,
 * homes of the carried values, register tiles and barriers. Shared by the forward (schedule.ts)
 * and the backward kernel (backward.ts), which differ in their stages and what they carry.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import { type Program, size } from '../ir/ir.ts';
import { placeBarriers } from './barriers.ts';
import type { Carried, Home, Homes, Placement, ScheduledKernel, Stage, TargetLimits } from './kernel.ts';
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
  const temporaries: Interval[] = [...buffered].map((id) => ({
    key: id,
    elements: size(p.nodes[id].shape),
    from: stageOf.get(id)!,
    to: lastRead.get(id) ?? stageOf.get(id)!,
  }));
  const homeIntervals: Interval[] = chunk.layer.states.flatMap((s) =>
    carried.map((kind) => ({
      key: homeKey(kind, s.name),
      elements: size(s.shape),
      from: 0,
      to: stages.length,
    })),
  );
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
    workgroupFloats: chip.used,
    scratchFloats: scratch.used,
  };
}
