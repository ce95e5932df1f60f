/**
 * Barrier placement: a stage needs a barrier before it only when it reads memory written since the
 * last barrier, or writes memory read or written since then (memory is shared between buffers
 * whose lives do not overlap, so hazards are tracked on address ranges, not on nodes). Where both
 * accesses to the memory are by the warps that own its rows (schedule/warp-rows.ts), with the same
 * rows to the same warps, only the lanes of one warp exchange data and a warp barrier suffices.
 */
import { programKey } from '../../core/mangle.ts';
import type { Program } from '../ir/ir.ts';
import { size } from '../ir/ir.ts';
import {
  type Carried,
  type Home,
  type Homes,
  homeFloats,
  type Placement,
  type Stage,
  type WarpRows,
} from './kernel.ts';
import { stageReads } from './reads.ts';
import { rowReads } from './warp-rows.ts';

/** An address range in one memory space; `global:NAME` spaces are the state tensors kept in place. */
export interface Range {
  space: string;
  from: number;
  to: number;
  /**
   * Where each element is touched by one warp alone: which, as a key equal for accesses that give
   * every element to the same warp (rows of `rowElements` from `from`, `rowsPerWarp` rows a warp).
   */
  warps?: string;
}

export type Barrier = 'none' | 'warp' | 'workgroup' | 'storage';

/** Whether a barrier orders every warp of the workgroup (a warp barrier orders one warp's lanes alone). */
export const acrossWarps = (b: Barrier): boolean => b === 'workgroup' || b === 'storage';

const overlaps = (a: Range, b: Range) => a.space === b.space && a.from < b.to && b.from < a.to;
/** Two accesses to the same elements by the same warps: only lanes of one warp can conflict. */
const local = (a: Range, b: Range) => a.warps !== undefined && a.warps === b.warps;

export interface MemoryMap {
  program: Program;
  buffers: ReadonlyMap<number, Placement>;
  homes: ReadonlyMap<string, Homes>;
  stateSize: ReadonlyMap<string, number>;
  /** The carried value each home input of the program (by its key) is. */
  homeInputs: ReadonlyMap<string, { kind: Carried; name: string }>;
  /** The stages whose rows warps own, by stage index. */
  warpRows: ReadonlyMap<number, WarpRows>;
}

/**
 * The memory a buffer or home occupies; none for a value passed through its ports, read from an
 * input the kernel never writes and written to an output it never reads.
 */
function rangeOf(p: Placement | Home, elements: number, name: string): Range[] {
  if (p.space === 'ports') return [];
  if (p.space === 'global') return [{ space: `global:${name}`, from: 0, to: elements }];
  return [{ space: p.space, from: p.offset, to: p.offset + elements }];
}

/**
 * The memory an update writes of a home: where it ping-pongs, the slot after the one the chunk
 * reads (which slot is which alternates from chunk to chunk, and the chunk's closing barrier
 * orders one chunk's accesses before the next's, so within a chunk the two slots stay apart).
 */
function updatedRange(h: Home, elements: number, name: string): Range[] {
  const shift = homeFloats(h, elements) - elements;
  return rangeOf(h, elements, name).map((r) => ({ ...r, from: r.from + shift, to: r.to + shift }));
}

/** The range as the warps owning its rows touch it: `rowElements` elements a row. */
const byWarps = (r: Range, rows: WarpRows, rowElements: number): Range => ({
  ...r,
  warps: `${r.space}@${r.from}:${rowElements}x${rows.rowsPerWarp}`,
});

/** What a stage reads (through every inlined node) and writes. */
export function accesses(m: MemoryMap, s: Stage, rows?: WarpRows): { reads: Range[]; writes: Range[] } {
  const reads: Range[] = [];
  const aligned = rows ? rowReads(s, m.program, (x) => m.buffers.has(x)) : new Map<number, boolean>();
  for (const id of stageReads(s, m.program, (x) => m.buffers.has(x))) {
    const n = m.program.nodes[id];
    const placed = m.buffers.get(id);
    const key = n.op.kind === 'input' ? n.op.name : '';
    const home = m.homeInputs.get(key);
    let r: Range[] = [];
    if (placed) r = rangeOf(placed, size(n.shape), '');
    else if (home) r = rangeOf(m.homes.get(home.name)![home.kind]!, m.stateSize.get(home.name)!, key);
    for (const x of r) reads.push(rows && aligned.get(id) ? byWarps(x, rows, size(n.shape) / n.shape[0]) : x);
  }
  const written = (r: Range) => (rows ? byWarps(r, rows, rows.rowElements) : r);
  if (s.kind === 'compute')
    return { reads, writes: rangeOf(m.buffers.get(s.node)!, size(m.program.nodes[s.node].shape), '').map(written) };
  if (s.kind === 'output') return { reads, writes: [] };
  // Two gradients of one port (a row's scale and the commit's) are added to the same elements.
  if (s.kind === 'gradient') return { reads, writes: [{ space: `gradient:${s.port}`, from: 0, to: 1 }] };
  const h = m.homes.get(s.state)!;
  const n = m.stateSize.get(s.state)!;
  const key = (role: Carried) => programKey({ role, name: s.state });
  const writes = [...updatedRange(h.state, n, key('state')), ...updatedRange(h.accum, n, key('accum'))];
  if (h.opt) writes.push(...updatedRange(h.opt, n, key('opt')));
  return { reads, writes: writes.map(written) };
}

/**
 * Ranges by space, each kept once and in order of start, so that those overlapping a range are
 * found without visiting the rest: a deep kernel has thousands of stages between two barriers.
 */
class Ranges {
  private readonly seen = new Set<string>();
  private readonly spaces = new Map<string, { sorted: Range[]; longest: number }>();

  add(r: Range): void {
    const key = `${r.space}@${r.from}-${r.to}/${r.warps}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const s = this.spaces.get(r.space) ?? { sorted: [], longest: 0 };
    this.spaces.set(r.space, s);
    s.sorted.splice(this.firstFrom(s.sorted, r.from), 0, r);
    s.longest = Math.max(s.longest, r.to - r.from);
  }

  /** Whether one of the ranges overlapping `x` satisfies `test`. */
  some(x: Range, test: (y: Range) => boolean): boolean {
    const s = this.spaces.get(x.space);
    if (!s) return false;
    // Only ranges starting within `longest` before x's end can reach into it.
    for (let i = this.firstFrom(s.sorted, x.from - s.longest); i < s.sorted.length; i++) {
      const y = s.sorted[i];
      if (y.from >= x.to) break;
      if (overlaps(x, y) && test(y)) return true;
    }
    return false;
  }

  /** Whether any range is outside on-chip memory. */
  global(): boolean {
    return [...this.spaces.keys()].some((space) => space !== 'workgroup');
  }

  /** The index of the first range starting at `from` or later. */
  private firstFrom(sorted: readonly Range[], from: number): number {
    let [lo, hi] = [0, sorted.length];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid].from < from) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** The accesses since a barrier. */
class Pending {
  private readonly reads = new Ranges();
  private readonly writes = new Ranges();

  add(reads: readonly Range[], writes: readonly Range[]): void {
    for (const r of reads) this.reads.add(r);
    for (const r of writes) this.writes.add(r);
  }

  /** Whether a stage with these accesses must wait for those pending: the same memory, and one of them writes. */
  hazard(reads: readonly Range[], writes: readonly Range[], keep: (x: Range, y: Range) => boolean): boolean {
    return (
      reads.some((x) => this.writes.some(x, (y) => keep(x, y))) ||
      writes.some((x) => this.reads.some(x, (y) => keep(x, y)) || this.writes.some(x, (y) => keep(x, y)))
    );
  }

  /** Whether any pending access is outside on-chip memory. */
  global(): boolean {
    return this.reads.global() || this.writes.global();
  }
}

/**
 * The barrier after each stage; the last always has a workgroup's, since the next chunk reads the
 * new state. A workgroup barrier where a hazard crosses warps since the last one; else a warp
 * barrier where one within warps follows the last barrier of either kind.
 */
export function placeBarriers(m: MemoryMap, stages: readonly Stage[]): Barrier[] {
  const access = stages.map((s, i) => accesses(m, s, m.warpRows.get(i)));
  const barriers: Barrier[] = stages.map(() => 'none');
  let block = new Pending();
  let warp = new Pending();
  const close = (i: number) => {
    barriers[i] = block.global() ? 'storage' : 'workgroup';
    block = new Pending();
    warp = new Pending();
  };
  access.forEach((a, i) => {
    if (i > 0 && block.hazard(a.reads, a.writes, (x, y) => !local(x, y))) close(i - 1);
    else if (i > 0 && warp.hazard(a.reads, a.writes, () => true)) {
      barriers[i - 1] = 'warp';
      warp = new Pending();
    }
    block.add(a.reads, a.writes);
    warp.add(a.reads, a.writes);
  });
  close(stages.length - 1);
  return barriers;
}
