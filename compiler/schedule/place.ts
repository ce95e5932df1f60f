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
 * Lowest offset where a buffer of `elements` live in stages [from, to] fits beside the placed
 * buffers it overlaps in time; `placed` is in order of offset (ties in order of placement), so one
 * pass finds it.
 */
function firstFit(placed: Placed, elements: number, from: number, to: number): number {
  let offset = 0;
  for (let i = 0; i < placed.offset.length; i++) {
    if (placed.from[i] > to || from > placed.to[i]) continue;
    if (offset + elements <= placed.offset[i]) break;
    offset = Math.max(offset, placed.offset[i] + placed.elements[i]);
  }
  return offset;
}

/**
 * The offset of the smallest gap beside the placed buffers `iv`'s life overlaps that holds it, or
 * the top of those buffers: packs a slice tighter than first-fit where small buffers would
 * otherwise take the holes big ones need.
 */
function bestFit(placed: Placed, elements: number, from: number, to: number): number {
  let offset = 0;
  let best: number | undefined;
  let bestGap = Infinity;
  for (let i = 0; i < placed.offset.length; i++) {
    if (placed.from[i] > to || from > placed.to[i]) continue;
    const gap = placed.offset[i] - offset;
    if (gap >= elements && gap < bestGap) {
      best = offset;
      bestGap = gap;
    }
    offset = Math.max(offset, placed.offset[i] + placed.elements[i]);
  }
  return best ?? offset;
}

/** The placed buffers as columns, in order of offset: a kernel places thousands (a backward of a deep spec). */
interface Placed {
  offset: number[];
  elements: number[];
  from: number[];
  to: number[];
}

export class Arena {
  private readonly placed: Placed = { offset: [], elements: [], from: [], to: [] };

  constructor(
    readonly capacity: number,
    private readonly fit: 'first' | 'best' = 'first',
  ) {}

  /** The offset given to `iv`, or undefined when it does not fit. */
  place(iv: Interval): number | undefined {
    const offset = (this.fit === 'first' ? firstFit : bestFit)(this.placed, iv.elements, iv.from, iv.to);
    if (offset + iv.elements > this.capacity) return undefined;
    const p = this.placed;
    let at = p.offset.length;
    while (at > 0 && p.offset[at - 1] > offset) at--;
    p.offset.splice(at, 0, offset);
    p.elements.splice(at, 0, iv.elements);
    p.from.splice(at, 0, iv.from);
    p.to.splice(at, 0, iv.to);
    return offset;
  }

  get used(): number {
    return this.placed.offset.reduce((m, o, i) => Math.max(m, o + this.placed.elements[i]), 0);
  }
}
