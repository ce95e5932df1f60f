/**
 * Places buffers in on-chip memory first-fit by live interval, so buffers whose lives do not
 * overlap share space; what does not fit goes to the workgroup's slice of global scratch.
 */
export interface Interval {
  key: number | string;
  elements: number;
  /** First and last stage (inclusive) in which the buffer must hold its value. */
  from: number;
  to: number;
}

interface Placed extends Interval {
  offset: number;
}

/** Lowest offset where `iv` fits beside the already placed buffers it overlaps in time. */
function firstFit(placed: readonly Placed[], iv: Interval): number {
  const busy = placed.filter((p) => p.from <= iv.to && iv.from <= p.to).sort((a, b) => a.offset - b.offset);
  let offset = 0;
  for (const p of busy) {
    if (offset + iv.elements <= p.offset) break;
    offset = Math.max(offset, p.offset + p.elements);
  }
  return offset;
}

export class Arena {
  private readonly placed: Placed[] = [];

  constructor(readonly capacity: number) {}

  /** The offset given to `iv`, or undefined when it does not fit. */
  place(iv: Interval): number | undefined {
    const offset = firstFit(this.placed, iv);
    if (offset + iv.elements > this.capacity) return undefined;
    this.placed.push({ ...iv, offset });
    return offset;
  }

  get used(): number {
    return this.placed.reduce((m, p) => Math.max(m, p.offset + p.elements), 0);
  }
}
