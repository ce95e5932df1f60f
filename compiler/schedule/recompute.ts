/**
 * Recomputation where on-chip memory overflows (rematerialization). A buffered elementwise value
 * read early and again much later holds its buffer across every stage between; where those stages
 * are the ones that push buffers out to global scratch, computing the value a second time just
 * before its late readers frees that memory for the whole gap. The copy reads what the value was
 * computed from, which must then live that long instead. The converse helps too: a sum of two
 * products read only much later, computed into a buffer of its own as soon as they are, holds one
 * value there where two were. Whether a trade pays is the layout's to say, so each is tried and
 * kept only where the kernel moves less through scratch.
 */
import { type Node, type Program, readersOf, size } from '../ir/ir.ts';
import { acrossWarps } from './barriers.ts';
import { inlineCost } from './fusion.ts';
import type { ScheduledKernel, TargetLimits } from './kernel.ts';
import { globalFloats, residentWorkgroups } from './layout.ts';
import { stageReads } from './reads.ts';

/** Node kinds computed element by element from what they read, with nothing to keep but their inputs. */
const ELEMENTWISE = new Set<Node['op']['kind']>(['unary', 'binary', 'expand', 'reshape', 'transpose']);
/** The most flops per element a value may cost to be computed twice (fusion.ts counts them alike). */
const RECOMPUTE_AT_MOST = 24;

/** A value to compute again: reads of `node` by nodes from program position `from` on get the copy. */
export interface LateCopy {
  node: number;
  from: number;
}

/**
 * The copies worth trying in a kernel with buffers in global scratch: each buffered elementwise
 * value, cheap to recompute, whose reads leave a gap over stages where scratch is live, split at
 * the compute stage that ends its longest such gap.
 */
function lateCopies(k: ScheduledKernel, { stageOf, readAt, scratchStages }: Lifetimes): LateCopy[] {
  const p = k.program;
  const isBuffered = (id: number) => k.buffers.has(id);
  const outputs = new Set(p.outputs.map((o) => o.node));
  const cost = new Array<number>(p.nodes.length).fill(0);
  const copies: LateCopy[] = [];
  for (const n of p.nodes) {
    const own = inlineCost(n, cost);
    cost[n.id] = isBuffered(n.id) ? 1 : own;
    if (!isBuffered(n.id) || !ELEMENTWISE.has(n.op.kind) || outputs.has(n.id) || own > RECOMPUTE_AT_MOST) continue;
    const reads = [stageOf.get(n.id)!, ...(readAt.get(n.id) ?? [])];
    let split: number | undefined;
    let widest = 0;
    for (let j = 1; j < reads.length; j++) {
      const [a, b] = [reads[j - 1], reads[j]];
      const stage = k.stages[b];
      const over = scratchStages(a + 1, b);
      if (over > widest && stage.kind === 'compute') {
        widest = over;
        split = stage.node;
      }
    }
    if (split !== undefined) copies.push({ node: n.id, from: split });
  }
  return copies;
}

/**
 * Inlined values that, computed into a buffer of their own as soon as their operands are, end
 * those operands' lives sooner: an elementwise combination of two buffered values (products, most
 * often) that the stage reading it needs only much later, across stages where scratch is live.
 * Its own buffer, written over an operand's, holds one value where two were.
 */
function earlySums(k: ScheduledKernel, { stageOf, readAt, firstRead, scratchStages }: Lifetimes): number[] {
  const p = k.program;
  const isBuffered = (id: number) => k.buffers.has(id);
  return p.nodes.flatMap((n) => {
    if (isBuffered(n.id) || n.op.kind !== 'binary' || !n.args.every((a) => stageOf.has(a))) return [];
    const ready = Math.max(...n.args.map((a) => stageOf.get(a)!));
    const read = firstRead.get(n.id);
    if (read === undefined || n.args.some((a) => Math.max(...readAt.get(a)!) < read)) return [];
    const operands = n.args.reduce((sum, a) => sum + size(p.nodes[a].shape), 0);
    const spans = scratchStages(ready + 1, read + 1) > 0;
    return spans && operands > size(n.shape) ? [n.id] : [];
  });
}

/**
 * Where each buffer is computed and read, the first stage that reads each node (through inlined
 * ones too), and how many stages from `from` up to (not including) `to` have some buffer in
 * scratch live.
 */
interface Lifetimes {
  stageOf: ReadonlyMap<number, number>;
  readAt: ReadonlyMap<number, number[]>;
  firstRead: ReadonlyMap<number, number>;
  scratchStages: (from: number, to: number) => number;
}

function lifetimes(k: ScheduledKernel): Lifetimes {
  const isBuffered = (id: number) => k.buffers.has(id);
  const stageOf = new Map<number, number>();
  const readAt = new Map<number, number[]>();
  const firstRead = new Map<number, number>();
  k.stages.forEach((s, i) => {
    if (s.kind === 'compute') stageOf.set(s.node, i);
    for (const id of stageReads(s, k.program, isBuffered)) {
      if (!firstRead.has(id)) firstRead.set(id, i);
      if (!isBuffered(id)) continue;
      const at = readAt.get(id);
      if (at) at.push(i);
      else readAt.set(id, [i]);
    }
  });
  const scratchLive = new Array<boolean>(k.stages.length).fill(false);
  for (const [id, place] of k.buffers) {
    if (place.space !== 'scratch') continue;
    const from = stageOf.get(id)!;
    const to = Math.max(from, ...(readAt.get(id) ?? []));
    for (let i = from; i <= to; i++) scratchLive[i] = true;
  }
  const before = [0];
  for (const live of scratchLive) before.push(before[before.length - 1] + (live ? 1 : 0));
  const scratchStages = (from: number, to: number) => (to > from ? before[to] - before[from] : 0);
  return { stageOf, readAt, firstRead, scratchStages };
}

/**
 * `p` with the reads of the copied node by nodes at program position `from` and later served by
 * a copy computed just before the first of them, with copies of the unbuffered nodes (computed
 * inline where read) through which such reads reach it; undefined where nothing reads it that
 * late. Stages follow program order, so the copy's stage comes just before its first reader's.
 */
export function withLateCopy(
  p: Program,
  copy: LateCopy,
  isBuffered: (id: number) => boolean,
): { program: Program; renamed: ReadonlyMap<number, number> } | undefined {
  const { node, from } = copy;
  const outputs = new Set(p.outputs.map((o) => o.node));
  const users = readersOf(p);
  // The nodes before `from` whose value is `node`'s, or computed inline from it.
  const reaches = new Set([node]);
  for (let id = node + 1; id < from; id++) {
    const n = p.nodes[id];
    if (!isBuffered(id) && ELEMENTWISE.has(n.op.kind) && !outputs.has(id) && n.args.some((a) => reaches.has(a)))
      reaches.add(id);
  }
  // Of those, the ones read from `from` on, directly or through another copied one, and where
  // each copy goes: just before its first such reader.
  const at = new Map<number, number>();
  for (let id = from - 1; id >= node; id--) {
    if (!reaches.has(id)) continue;
    const late = users[id].flatMap((u) => (u >= from ? [u] : at.has(u) ? [at.get(u)!] : []));
    if (late.length > 0) at.set(id, Math.min(...late));
  }
  if (!at.has(node)) return undefined;
  const copiesAt = new Map<number, number[]>();
  for (const [id, position] of [...at].sort((x, y) => x[0] - y[0]))
    copiesAt.set(position, [...(copiesAt.get(position) ?? []), id]);

  const nodes: Node[] = [];
  const renamed = new Map<number, number>();
  const copied = new Map<number, number>();
  const emit = (n: Node, args: readonly number[]) => {
    nodes.push({ ...n, id: nodes.length, args });
    return nodes.length - 1;
  };
  const lateArg = (a: number) => copied.get(a) ?? renamed.get(a)!;
  for (const n of p.nodes) {
    for (const id of copiesAt.get(n.id) ?? []) copied.set(id, emit(p.nodes[id], p.nodes[id].args.map(lateArg)));
    const args = n.id >= from ? n.args.map(lateArg) : n.args.map((a) => renamed.get(a)!);
    renamed.set(n.id, emit(n, args));
  }
  const program = {
    nodes,
    inputs: p.inputs.map((i) => ({ ...i, node: renamed.get(i.node)! })),
    outputs: p.outputs.map((o) => ({ ...o, node: renamed.get(o.node)! })),
  };
  return { program, renamed };
}

const traffic = new WeakMap<ScheduledKernel, number>();

/** Floats a kernel moves through global scratch per chunk: each scratch buffer written once and read by each stage that reads it. */
export function scratchTraffic(k: ScheduledKernel): number {
  const known = traffic.get(k);
  if (known !== undefined) return known;
  const isBuffered = (id: number) => k.buffers.has(id);
  const reads = new Map<number, number>();
  for (const s of k.stages)
    for (const id of stageReads(s, k.program, isBuffered)) reads.set(id, (reads.get(id) ?? 0) + 1);
  let floats = 0;
  for (const [id, place] of k.buffers)
    if (place.space === 'scratch') floats += size(k.program.nodes[id].shape) * (1 + (reads.get(id) ?? 0));
  traffic.set(k, floats);
  return floats;
}

/**
 * Moves scheduled in full a round, of those whose estimate (KernelPlan `estimate`: placement
 * alone) moves less through scratch, the best estimates first, until one pays.
 */
const TRIES_PER_ROUND = 4;

/** A program of the chunk and the nodes given buffers beyond those fusion chooses. */
export interface Variant {
  program: Program;
  buffered: ReadonlySet<number>;
}

/**
 * The program variants found for a chunk, by target (its warps and multiprocessor) and by the
 * on-chip memory of the limits. What overflows hardly depends on the block size, so other block
 * sizes only weigh the variant found. Less memory (the room beside tensor-core staging) searches
 * on from the variant found with the most, which a target's kernels schedule first: the moves
 * found once are not searched for again, and no kernel depends on what else the compile
 * scheduled before it.
 */
const variants = new WeakMap<object, Map<string, Map<number, Variant>>>();

/**
 * Estimates (KernelPlan `estimate`: each a layout) one search may make, and the program nodes
 * they may lay out in all: a spec thousands of levels deep gets a few.
 */
const ESTIMATES_PER_SEARCH = 32;
const ESTIMATED_NODES_PER_SEARCH = 32_000;

/**
 * The kernel `schedule` lays out from `program` (of `source`, a chunk), or from a variant of it
 * (withLessScratch) that moves less through global scratch at no cost in resident workgroups,
 * homes kept on chip or scratch size, nor in block barriers unless the scratch slice shrinks.
 * `schedule` with `estimate` set lays out memory alone (KernelPlan `estimate`).
 */
export function withRecomputation<T extends { kernel: ScheduledKernel }>(
  source: object,
  program: Program,
  limits: TargetLimits,
  schedule: (v: Variant, estimate?: true) => T,
): T {
  const resident = (k: ScheduledKernel) => residentWorkgroups(limits, k.workgroupFloats * 4);
  // A home moved to global memory would be read and written back every chunk: not a trade to make for scratch.
  const homesInGlobal = (k: ScheduledKernel) => globalFloats(k) - k.scratchFloats;
  // As betterSchedule orders kernels, a smaller scratch slice may cost block barriers, and less
  // through the same slice may not (a decode kernel's few floats are not worth a barrier).
  const blockBarriers = (k: ScheduledKernel) => k.barriers.filter(acrossWarps).length;
  const notWorse = (a: ScheduledKernel, b: ScheduledKernel) =>
    resident(a) >= resident(b) &&
    homesInGlobal(a) <= homesInGlobal(b) &&
    (globalFloats(a) < globalFloats(b) ||
      (globalFloats(a) === globalFloats(b) && blockBarriers(a) <= blockBarriers(b)));
  const own: Variant = { program, buffered: new Set() };
  const byTarget = variants.get(source) ?? new Map<string, Map<number, Variant>>();
  variants.set(source, byTarget);
  const target = JSON.stringify([limits.lanes, limits.multiprocessor?.bytes]);
  const found = byTarget.get(target) ?? new Map<number, Variant>();
  byTarget.set(target, found);
  const plain = schedule(own);
  /** The kernel of `v`, where it moves less through scratch than the program's own at no cost. */
  const weighed = (v: Variant | undefined) => {
    if (v === undefined || v === own) return undefined;
    const varied = schedule(v);
    return notWorse(varied.kernel, plain.kernel) && scratchTraffic(varied.kernel) < scratchTraffic(plain.kernel)
      ? { ...varied, variant: v }
      : undefined;
  };
  const memory = limits.workgroupBytes;
  if (found.has(memory)) return weighed(found.get(memory)) ?? plain;
  const most = found.size > 0 ? found.get(Math.max(...found.keys())) : undefined;
  const seed = weighed(most) ?? { ...plain, variant: own };
  let left = Math.min(ESTIMATES_PER_SEARCH, Math.floor(ESTIMATED_NODES_PER_SEARCH / program.nodes.length));
  const estimate = (v: Variant) => (left-- > 0 ? schedule(v, true).kernel : undefined);
  const best = withLessScratch(seed, schedule, estimate, notWorse);
  found.set(memory, best.variant);
  return best;
}

/**
 * The kernel `first` (scheduled from its variant), or of variants with late copies and early sums,
 * where one moves less through global scratch (scratchTraffic) at no cost `notWorse` forbids, or
 * as much in less on-chip memory: a copy can free memory at the peak that only another turns into
 * less scratch (three values of one GELU). Every move is estimated (`estimate`: where memory
 * goes, no barriers; undefined once the caller's budget is spent), and those whose estimate pays
 * are scheduled in full, the best first. Each round keeps the first that pays, until none does or
 * nothing is in scratch.
 */
function withLessScratch<T extends { kernel: ScheduledKernel }>(
  first: T & { variant: Variant },
  scheduleVariant: (v: Variant) => T,
  estimate: (v: Variant) => ScheduledKernel | undefined,
  notWorse: (a: ScheduledKernel, b: ScheduledKernel) => boolean,
): T & { variant: Variant } {
  const fewer = (a: ScheduledKernel, b: ScheduledKernel) =>
    scratchTraffic(a) < scratchTraffic(b) ||
    (scratchTraffic(a) === scratchTraffic(b) && a.workgroupFloats < b.workgroupFloats);
  let { variant } = first;
  let best: T = first;
  while (best.kernel.scratchFloats > 0) {
    const k = best.kernel;
    const now = estimate(variant);
    if (!now) break;
    const paying: { v: Variant; e: ScheduledKernel }[] = [];
    for (const move of moves(k, variant)) {
      const v = move();
      const e = v && estimate(v);
      if (v && !e) break;
      if (e && notWorse(e, now) && fewer(e, now)) paying.push({ v: v!, e });
    }
    const ranked = paying.sort((a, b) => (fewer(a.e, b.e) ? -1 : fewer(b.e, a.e) ? 1 : 0)).slice(0, TRIES_PER_ROUND);
    let next: { variant: Variant; scheduled: T } | undefined;
    for (const { v } of ranked) {
      const scheduled = scheduleVariant(v);
      if (notWorse(scheduled.kernel, k) && fewer(scheduled.kernel, k)) {
        next = { variant: v, scheduled };
        break;
      }
    }
    if (!next) break;
    ({ variant, scheduled: best } = next);
  }
  return { ...best, variant };
}

/**
 * The variants of the late copies and early sums of a kernel scheduled from `variant`, each made
 * when called: a copy is a whole program, and a deep spec has thousands of candidates.
 */
function moves(k: ScheduledKernel, variant: Variant): (() => Variant | undefined)[] {
  const isBuffered = (id: number) => k.buffers.has(id);
  const life = lifetimes(k);
  const copies = lateCopies(k, life).map((copy) => () => {
    const c = withLateCopy(k.program, copy, isBuffered);
    return c && { program: c.program, buffered: new Set([...variant.buffered].map((id) => c.renamed.get(id)!)) };
  });
  const sums = earlySums(k, life).map((id) => () => ({
    program: k.program,
    buffered: new Set([...variant.buffered, id]),
  }));
  return [...copies, ...sums];
}
