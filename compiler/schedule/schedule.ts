/** From the derived mini-batch program and a target's limits to a scheduled kernel. */
import { programKey } from '../../core/mangle.ts';
import { type ChunkProgram, WALK } from '../dualform/derive.ts';
import { assertKernelRenders } from './rule-support.ts';
import { chooseBuffers } from './fusion.ts';
import { ruleTokenRoles } from '../signature.ts';
import type { Carried, ScheduledKernel, Stage, TargetLimits } from './kernel.ts';
import { betterSchedule, globalFloats, layOut, residentWorkgroups } from './layout.ts';
import { type Variant, withRecomputation } from './recompute.ts';
import { acrossWarps } from './barriers.ts';
import { stageReads } from './reads.ts';
import { type Program, readersOf, sameShape, size } from '../ir/ir.ts';
import type { HomeKey } from './traffic.ts';

/** Scheduled kernels by program, limits and TwoSlots: every target of one compile schedules a variant once. */
const scheduled = new WeakMap<ChunkProgram, Map<string, ScheduledKernel>>();
/** The one-slot kernel by program and limits, with its layouts in two slots: the TwoSlots modes share them. */
const laidOut = new WeakMap<ChunkProgram, Map<string, { kernel: ScheduledKernel; relaid: Relaid }>>();

/**
 * Which homes may take two slots (kernel.ts, OnChipHome `pingPong`; withPingPong below): where that
 * saves block barriers at no cost in resident workgroups or global memory (`paying`); where it
 * saves block barriers at no cost in global memory, whatever the resident workgroups, for a caller
 * that adds to the kernel and weighs those itself (`fewer-barriers`, tensor-core-placement.ts); none (`never`).
 */
export type TwoSlots = 'paying' | 'fewer-barriers' | 'never';

/** The chunk's kernel under a target's limits. */
export function schedule(chunk: ChunkProgram, limits: TargetLimits, pingPong: TwoSlots = 'paying'): ScheduledKernel {
  assertKernelRenders(chunk, 'fused-kernel (WGSL, CUDA, TS)');
  const byLimits = scheduled.get(chunk) ?? new Map<string, ScheduledKernel>();
  scheduled.set(chunk, byLimits);
  const key = JSON.stringify({ limits, pingPong });
  const known = byLimits.get(key);
  if (known) return known;
  const layouts = laidOut.get(chunk) ?? new Map<string, { kernel: ScheduledKernel; relaid: Relaid }>();
  laidOut.set(chunk, layouts);
  const limitsKey = JSON.stringify(limits);
  const single = layouts.get(limitsKey) ?? scheduleOnce(chunk, limits);
  layouts.set(limitsKey, single);
  const kernel =
    pingPong === 'never' ? single.kernel : withPingPong(single.kernel, single.relaid, limits, pingPong === 'paying');
  byLimits.set(key, kernel);
  return kernel;
}

/** The program input a forward kernel's carried value is: `state.S`, `accum.S`, `opt.S`. */
export const homeKey = (kind: Carried, name: string): HomeKey => programKey({ role: kind, name });

/**
 * The kernel with every home in one slot, and how to lay it out with some in two: of the chunk's
 * program, or of a variant of it with values computed again late and sums computed early where
 * that moves less through global scratch (recompute.ts).
 */
function scheduleOnce(chunk: ChunkProgram, limits: TargetLimits): { kernel: ScheduledKernel; relaid: Relaid } {
  return withRecomputation(chunk, chunk.program, limits, (v, estimate) => scheduleProgram(chunk, v, limits, estimate));
}

/** The kernel of one variant of the chunk's program (recompute.ts), as scheduleOnce; or where its memory goes (`estimate`, KernelPlan). */
function scheduleProgram(
  chunk: ChunkProgram,
  { program: p, buffered: more }: Variant,
  limits: TargetLimits,
  estimate?: true,
): { kernel: ScheduledKernel; relaid: Relaid } {
  const out = (name: string) => p.outputs.find((o) => o.name === name)!.node;
  const outputNode = out(programKey({ role: 'output', name: 'output' }));
  const carried: Carried[] = chunk.layer.update.rules.momentum ? ['state', 'accum', 'opt'] : ['state', 'accum'];
  const updates = chunk.layer.states.map((s) => ({
    state: s.name,
    stateNode: out(programKey({ role: 'state', name: s.name })),
    accumNode: out(programKey({ role: 'accum', name: s.name })),
    ...(carried.includes('opt') ? { optNode: out(programKey({ role: 'opt', name: s.name })) } : {}),
  }));
  const perToken = new Set([
    ...chunk.layer.views.map((v) => programKey({ role: 'view', name: v.name })),
    programKey({ role: 'rate', name: 'lr' }),
    ...ruleTokenRoles(chunk.layer).map(([role, name]) => programKey({ role, name })),
  ]);
  const outputs = new Set(p.outputs.map((o) => o.node));
  const buffered = new Set([...chooseBuffers(p, outputs, perToken, limits.workgroupBytes / 4), ...more]);
  const passed = passedCarried(chunk, p, updates);

  // Stages: buffered nodes in program order (already topological), then the writes.
  const withBuffers = (nodes: ReadonlySet<number>, pingPong?: ReadonlySet<string>) => {
    const stages: Stage[] = [
      ...p.nodes.filter((n) => nodes.has(n.id)).map((n) => ({ kind: 'compute' as const, node: n.id })),
    ];
    stages.push({ kind: 'output', node: outputNode }, ...updates.map((u) => ({ kind: 'update' as const, ...u })));
    return layOut(chunk, p, limits, { buffered: nodes, stages, carried, homeKey, passed, pingPong, estimate });
  };
  const plain: Relaid = (doubled) => withBuffers(buffered, doubled);
  const inUpdates = updateProducts(p, buffered, outputs, updates, chunk.layer.states);
  const fused: Relaid = (doubled) => ({
    ...withBuffers(new Set([...buffered].filter((id) => !inUpdates.has(id))), doubled),
    updateProducts: inUpdates,
  });
  const [layOutWith, kernel] =
    inUpdates.size === 0 ? [plain, plain()] : chooseOf([fused, fused()], [plain, plain()], limits);
  const doubled = new Map<string, ScheduledKernel>();
  const relaid: Relaid = (states) => {
    const key = [...(states ?? [])].sort().join();
    const known = doubled.get(key) ?? layOutWith(states);
    doubled.set(key, known);
    return known;
  };
  return { kernel, relaid };
}

/** The better of two kernels (layout.ts, betterSchedule), with how to lay it out again. */
function chooseOf(
  a: [Relaid, ScheduledKernel],
  b: [Relaid, ScheduledKernel],
  limits: TargetLimits,
): [Relaid, ScheduledKernel] {
  return betterSchedule(a[1], b[1], limits) ? a : b;
}

/** A kernel laid out again with the on-chip homes of these states ping-ponging (kernel.ts, OnChipHome). */
type Relaid = (pingPong?: ReadonlySet<string>) => ScheduledKernel;

/**
 * `k`, or `k` laid out again with the on-chip homes of some states ping-ponging where that saves
 * block barriers (an update no longer waits for every warp to finish reading the value it
 * replaces) without more global memory or (`keepResident`) fewer workgroups resident per multiprocessor: every
 * state whose home on chip another stage reads, else the smaller half of them, and so on (a
 * doubled home takes room).
 */
function withPingPong(
  k: ScheduledKernel,
  relaid: Relaid,
  limits: TargetLimits,
  keepResident: boolean,
): ScheduledKernel {
  const waits = k.stages.some((s, i) => s.kind === 'update' && i > 0 && acrossWarps(k.barriers[i - 1]));
  if (!waits) return k;
  const candidates = k.chunk.layer.states
    .filter((s) => readBeforeUpdate(k, s.name))
    .sort((x, y) => size(x.shape) - size(y.shape));
  const blockBarriers = (x: ScheduledKernel) => x.barriers.filter(acrossWarps).length;
  const resident = (x: ScheduledKernel) => residentWorkgroups(limits, x.workgroupFloats * 4);
  for (let n = candidates.length; n > 0; n = Math.floor(n / 2)) {
    const doubled = relaid(new Set(candidates.slice(0, n).map((s) => s.name)));
    if (
      blockBarriers(doubled) < blockBarriers(k) &&
      (!keepResident || resident(doubled) >= resident(k)) &&
      globalFloats(doubled) <= globalFloats(k)
    )
      return doubled;
  }
  return k;
}

/**
 * Whether a stage other than a state's update reads one of its homes kept on chip: only then may
 * the update wait for other warps' reads of the value it replaces, and two slots can help.
 */
function readBeforeUpdate(k: ScheduledKernel, state: string): boolean {
  const homes = k.states.get(state)!;
  const onChip = new Set(
    (Object.keys(homes) as Carried[])
      .filter((kind) => homes[kind]!.space === 'workgroup')
      .map((kind) => homeKey(kind, state)),
  );
  const isBuffered = (id: number) => k.buffers.has(id);
  return k.stages.some(
    (s) =>
      !(s.kind === 'update' && s.state === state) &&
      stageReads(s, k.program, isBuffered).some((id) => {
        const op = k.program.nodes[id].op;
        return op.kind === 'input' && onChip.has(op.name);
      }),
  );
}

/**
 * Products that a state's update stage can compute element by element where it reads them, with
 * the state: the product has the state's shape and is read only through elementwise nodes of that
 * shape inlined into the one update (a gradient read once, to update its state). Computed there,
 * it needs no buffer as large as the state (on chip, or in global scratch when it does not fit),
 * at the cost of a contraction without register tiles.
 */
function updateProducts(
  p: Program,
  buffered: ReadonlySet<number>,
  outputs: ReadonlySet<number>,
  updates: readonly { state: string; stateNode: number; accumNode: number; optNode?: number }[],
  states: readonly { name: string; shape: readonly number[] }[],
): Map<number, string> {
  const users = readersOf(p);
  const updateOf = new Map<number, string>();
  for (const u of updates)
    for (const id of [u.stateNode, u.accumNode, u.optNode]) if (id !== undefined) updateOf.set(id, u.state);
  const shapeOf = new Map(states.map((s) => [s.name, s.shape]));
  const found = new Map<number, string>();
  for (const n of p.nodes) {
    if (n.op.kind !== 'matmul') continue;
    const reached = new Set<string>();
    let elementwise = true;
    const pending = [n.id];
    const seen = new Set<number>();
    while (elementwise && pending.length > 0) {
      const id = pending.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const state = updateOf.get(id);
      if (state !== undefined) reached.add(state);
      else if (outputs.has(id)) elementwise = false;
      for (const u of users[id]) {
        const un = p.nodes[u];
        const kind = un.op.kind;
        if (buffered.has(u) || (kind !== 'unary' && kind !== 'binary') || !sameShape(un.shape, n.shape))
          elementwise = false;
        pending.push(u);
      }
    }
    const [state] = reached;
    if (elementwise && reached.size === 1 && sameShape(shapeOf.get(state)!, n.shape)) found.set(n.id, state);
  }
  return found;
}

/**
 * The carried values no chunk hands to the next: where a chunk holds a whole mini-batch, the walk
 * (core/walk.ts) ends a mini-batch with every chunk but the last, so an accumulator the program
 * resets there (`keep · …`, keep = 0 when the chunk ends it) starts every chunk but the first at
 * zero and is needed only by the first chunk (from its input) and after the last (its output).
 */
function passedCarried(chunk: ChunkProgram, p: Program, updates: readonly { accumNode: number }[]): Carried[] {
  if (chunk.rows < chunk.K) return [];
  const nodes = p.nodes;
  const isKeep = (id: number): boolean => {
    const n = nodes[id];
    if (n.op.kind === 'expand') return isKeep(n.args[0]);
    return n.op.kind === 'input' && n.op.name === WALK.keep;
  };
  const resets = (id: number) => {
    const n = nodes[id];
    return (
      (n.op.kind === 'binary' && n.op.fn === 'mul' && n.args.some(isKeep)) ||
      (n.op.kind === 'const' && n.op.value === 0)
    );
  };
  return updates.every((u) => resets(u.accumNode)) ? ['accum'] : [];
}
