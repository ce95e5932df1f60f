/**
 * Places buffers in on-chip memory first-fit by live interval, so buffers whose lives do not
 * overlap share space; what does not fit goes to the workgroup's slice of global scratch, packed
 * first-fit or best-fit (schedule/layout.ts tries both).
 */
export interface Interval {
  key: number | string;
  elements: number;
  /** First and last stage (inclusive) in which the buffer must hold its value. */
  from: number;
  to: number;
}

/**
 * The placed buffers in order of offset (ties in order of placement), as runs of at most
 * 2 RUN entries, each run with the span of stages its buffers live in: a placement skips every run
 * whose buffers all live apart from it in time. A kernel places thousands of buffers (the backward
 * of a deep spec), most alive for a few stages, and scanning them all made packing quadratic.
 */
interface Run {
  offset: number[];
  elements: number[];
  from: number[];
  to: number[];
  minFrom: number;
  maxTo: number;
}
const RUN = 64;

/**
 * Lowest offset where a buffer of `elements` live in stages [from, to] fits beside the placed
 * buffers it overlaps in time: one pass over them in order of offset finds it.
 */
function firstFit(runs: readonly Run[], elements: number, from: number, to: number): number {
  let offset = 0;
  for (const r of runs) {
    if (r.minFrom > to || from > r.maxTo) continue;
    for (let i = 0; i < r.offset.length; i++) {
      if (r.from[i] > to || from > r.to[i]) continue;
      if (offset + elements <= r.offset[i]) return offset;
      offset = Math.max(offset, r.offset[i] + r.elements[i]);
    }
  }
  return offset;
}

/**
 * The offset of the smallest gap beside the placed buffers the life overlaps that holds it, or the
 * top of those buffers: packs a slice tighter than first-fit where small buffers would otherwise
 * take the holes big ones need.
 */
function bestFit(runs: readonly Run[], elements: number, from: number, to: number): number {
  let offset = 0;
  let best: number | undefined;
  let bestGap = Infinity;
  for (const r of runs) {
    if (r.minFrom > to || from > r.maxTo) continue;
    for (let i = 0; i < r.offset.length; i++) {
      if (r.from[i] > to || from > r.to[i]) continue;
      const gap = r.offset[i] - offset;
      if (gap >= elements && gap < bestGap) {
        best = offset;
        bestGap = gap;
      }
      offset = Math.max(offset, r.offset[i] + r.elements[i]);
    }
  }
  return best ?? offset;
}

/** A run of the entries [begin, end) of `r`, with its span of stages. */
function slice(r: Run, begin: number, end: number): Run {
  const from = r.from.slice(begin, end);
  const to = r.to.slice(begin, end);
  return {
    offset: r.offset.slice(begin, end),
    elements: r.elements.slice(begin, end),
    from,
    to,
    minFrom: Math.min(...from),
    maxTo: Math.max(...to),
  };
}

export class Arena {
  private readonly runs: Run[] = [];
  private top = 0;

  constructor(
    readonly capacity: number,
    private readonly fit: 'first' | 'best' = 'first',
  ) {}

  /** The offset given to `iv`, or undefined when it does not fit. */
  place(iv: Interval): number | undefined {
    const offset = (this.fit === 'first' ? firstFit : bestFit)(this.runs, iv.elements, iv.from, iv.to);
    if (offset + iv.elements > this.capacity) return undefined;
    this.insert(offset, iv);
    this.top = Math.max(this.top, offset + iv.elements);
    return offset;
  }

  /** Inserts after every placed buffer at an offset up to `offset`, splitting a run grown past 2 RUN. */
  private insert(offset: number, iv: Interval): void {
    const runs = this.runs;
    if (runs.length === 0) runs.push({ offset: [], elements: [], from: [], to: [], minFrom: iv.from, maxTo: iv.to });
    // The last run starting at or below `offset` (the first run when none does).
    let lo = 0;
    let hi = runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (runs[mid].offset[0] <= offset) lo = mid;
      else hi = mid - 1;
    }
    const r = runs[lo];
    let at = r.offset.length;
    while (at > 0 && r.offset[at - 1] > offset) at--;
    r.offset.splice(at, 0, offset);
    r.elements.splice(at, 0, iv.elements);
    r.from.splice(at, 0, iv.from);
    r.to.splice(at, 0, iv.to);
    r.minFrom = Math.min(r.minFrom, iv.from);
    r.maxTo = Math.max(r.maxTo, iv.to);
    if (r.offset.length > 2 * RUN) runs.splice(lo, 1, slice(r, 0, RUN), slice(r, RUN, r.offset.length));
  }

  get used(): number {
    return this.top;
  }
}
