/** Ranges of on-chip memory (in floats) that a kernel's placements occupy, and free room among them. */
import { size } from '../ir/ir.ts';
import { homeFloats, type ScheduledKernel } from './kernel.ts';

/** Floats `from` up to (not including) `to`. */
export interface Span {
  from: number;
  to: number;
}

export const overlaps = (a: Span, b: Span): boolean => a.from < b.to && b.from < a.to;

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** The state homes kept on chip: occupied for the whole kernel. */
export function homeSpans(k: ScheduledKernel): Span[] {
  const stateSize = new Map(k.chunk.layer.states.map((st) => [st.name, size(st.shape)]));
  const out: Span[] = [];
  for (const [state, homes] of k.states)
    for (const h of Object.values(homes))
      if (h.space === 'workgroup') out.push({ from: h.offset, to: h.offset + homeFloats(h, stateSize.get(state)!) });
  return out;
}

/** The lowest 16-byte-aligned offset where `floats` fit beside every span (possibly past the end). */
export function firstGap(spans: readonly Span[], floats: number): number {
  let offset = 0;
  for (const b of [...spans].sort((x, y) => x.from - y.from)) {
    if (offset + floats <= b.from) break;
    offset = Math.max(offset, roundUp(b.to, 4));
  }
  return offset;
}
