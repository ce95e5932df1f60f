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
import { type Node, type Program, size } from '../ir/ir.ts';
import { inlineCost } from './fusion.ts';
import type { ScheduledKernel } from './kernel.ts';
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

/** A change to a kernel's program worth trying, with the floats it frees times the stages with scratch live over which it frees them. */
interface Move {
  frees: number;
  variant: () => Variant | undefined;
}

/**
 * The copies worth trying in a kernel with buffers in global scratch: each buffered elementwise
 * value, cheap to recompute, whose reads leave a gap over stages where scratch is live, split at
 * the compute stage that ends its longest such gap.
 */
function lateCopies(k: ScheduledKernel): (LateCopy & { frees: number })[] {
  const p = k.program;
  const isBuffered = (id: number) => k.buffers.has(id);
  const { stageOf, readAt, scratchLive } = lifetimes(k);
  const outputs = new Set(p.outputs.map((o) => o.node));
  const cost = new Array<number>(p.nodes.length).fill(0);
  const copies: (LateCopy & { frees: number })[] = [];
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
      const over = scratchLive.slice(a + 1, b).filter(Boolean).length;
      if (over > widest && stage.kind === 'compute') {
        widest = over;
        split = stage.node;
      }
    }
    if (split !== undefined) copies.push({ node: n.id, from: split, frees: size(n.shape) * widest });
  }
  return copies;
}

/**
 * Inlined values that, computed into a buffer of their own as soon as their operands are, end
 * those operands' lives sooner: an elementwise combination of two buffered values (products, most
 * often) that the stage reading it needs only much later, across stages where scratch is live.
 * Its own buffer, written over an operand's, holds one value where two were.
 */
function earlySums(k: ScheduledKernel): { node: number; frees: number }[] {
  const p = k.program;
  const { stageOf, readAt, scratchLive } = lifetimes(k);
  const isBuffered = (id: number) => k.buffers.has(id);
  const firstRead = new Map<number, number>();
  k.stages.forEach((s, i) => {
    for (const id of stageReads(s, p, isBuffered)) if (!firstRead.has(id)) firstRead.set(id, i);
  });
  return p.nodes.flatMap((n) => {
    if (isBuffered(n.id) || n.op.kind !== 'binary' || !n.args.every((a) => stageOf.has(a))) return [];
    const ready = Math.max(...n.args.map((a) => stageOf.get(a)!));
    const read = firstRead.get(n.id);
    if (read === undefined || n.args.some((a) => Math.max(...readAt.get(a)!) < read)) return [];
    const over = scratchLive.slice(ready + 1, read + 1).filter(Boolean).length;
    const operands = n.args.reduce((sum, a) => sum + size(p.nodes[a].shape), 0);
    const frees = (operands - size(n.shape)) * over;
    return frees > 0 ? [{ node: n.id, frees }] : [];
  });
}

/** Where each buffer is computed and read, and the stages at which some buffer in scratch is live. */
function lifetimes(k: ScheduledKernel) {
  const isBuffered = (id: number) => k.buffers.has(id);
  const stageOf = new Map<number, number>();
  const readAt = new Map<number, number[]>();
  k.stages.forEach((s, i) => {
    if (s.kind === 'compute') stageOf.set(s.node, i);
    for (const id of stageReads(s, k.program, isBuffered))
      if (isBuffered(id)) readAt.set(id, [...(readAt.get(id) ?? []), i]);
  });
  const scratchLive = new Array<boolean>(k.stages.length).fill(false);
  for (const [id, place] of k.buffers) {
    if (place.space !== 'scratch') continue;
    const from = stageOf.get(id)!;
    const to = Math.max(from, ...(readAt.get(id) ?? []));
    for (let i = from; i <= to; i++) scratchLive[i] = true;
  }
  return { stageOf, readAt, scratchLive };
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
  const users: number[][] = p.nodes.map(() => []);
  for (const n of p.nodes) for (const a of n.args) users[a].push(n.id);
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
 * Moves tried a round, those freeing most first, until one pays: each try schedules the kernel
 * again. How much a move frees ranks them only roughly (a value of 256 floats can be what lets a
 * product's buffer back on chip), so a round tries many.
 */
const TRIES_PER_ROUND = 16;

/** A program of the chunk and the nodes given buffers beyond those fusion chooses. */
export interface Variant {
  program: Program;
  buffered: ReadonlySet<number>;
}

/**
 * The kernel of `first`'s variant, or of variants with late copies and early sums, where one
 * moves less through global scratch (scratchTraffic) without fewer resident workgroups or a larger
 * scratch slice (`notWorse`), or as much in less on-chip memory: a copy can free memory at the
 * peak that only another turns into less scratch (three values of one GELU). Each round keeps
 * the first move that pays, until none does or nothing is in scratch.
 */
export function withLessScratch<T extends { kernel: ScheduledKernel }>(
  first: Variant,
  scheduleVariant: (v: Variant) => T,
  notWorse: (a: ScheduledKernel, b: ScheduledKernel) => boolean,
): T & { variant: Variant } {
  const fewer = (a: ScheduledKernel, b: ScheduledKernel) =>
    scratchTraffic(a) < scratchTraffic(b) ||
    (scratchTraffic(a) === scratchTraffic(b) && a.workgroupFloats < b.workgroupFloats);
  let variant = first;
  let best = scheduleVariant(first);
  while (best.kernel.scratchFloats > 0) {
    const k = best.kernel;
    const ranked = moves(k, variant)
      .sort((a, b) => b.frees - a.frees)
      .slice(0, TRIES_PER_ROUND);
    let next: { variant: Variant; scheduled: T } | undefined;
    for (const move of ranked) {
      const v = move.variant();
      const scheduled = v && scheduleVariant(v);
      if (scheduled && notWorse(scheduled.kernel, k) && fewer(scheduled.kernel, k)) {
        next = { variant: v, scheduled };
        break;
      }
    }
    if (!next) break;
    ({ variant, scheduled: best } = next);
  }
  return { ...best, variant };
}

/** The late copies and early sums of a kernel scheduled from `variant`. */
function moves(k: ScheduledKernel, variant: Variant): Move[] {
  const isBuffered = (id: number) => k.buffers.has(id);
  const copies = lateCopies(k).map((copy): Move => ({
    frees: copy.frees,
    variant: () => {
      const c = withLateCopy(k.program, copy, isBuffered);
      return c && { program: c.program, buffered: new Set([...variant.buffered].map((id) => c.renamed.get(id)!)) };
    },
  }));
  const sums = earlySums(k).map((sum): Move => ({
    frees: sum.frees,
    variant: () => ({ program: k.program, buffered: new Set([...variant.buffered, sum.node]) }),
  }));
  return [...copies, ...sums];
}
