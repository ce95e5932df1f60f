/**
 * What it costs a warp to bring a tensor-core operand to its fragments, in wavefronts of memory
 * (compiler/kernel/mma.ts chooses by it): shared memory's by its banks (./banks.ts), global
 * memory's one per 128-byte line the lanes touch, both evaluated for the lanes of one warp at its
 * first step (./lanes.ts).
 */
import { type Expr, operands } from './ir.ts';
import { requestWavefronts } from './banks.ts';
import { address, LANES, lanes, type Sample } from './lanes.ts';
import { LANE_NAME } from './warp-rows.ts';

/** One operand's staging: element `e` < `count` is `value` (zero unless `conditions` hold), staged at `at`. */
export interface Staging {
  count: number;
  conditions: (Expr | undefined)[];
  value: Expr;
  at: Expr;
}

/** A warp at its first lanes: `e` and `lane` take the lane's number, every other name 0. */
export const firstLanes = (): Sample => ({
  env: new Map([
    ['e', lanes((l) => l)],
    [LANE_NAME, lanes((l) => l)],
  ]),
  active: new Uint8Array(LANES).fill(1),
  weight: 1,
  known: new Map(),
});

/** Floats in a 128-byte line, what the L1 cache (the same memory as shared memory) serves in one wavefront. */
const LINE_FLOATS = 32;

/**
 * Wavefronts the loads in `value` take when every lane of a warp computes it: on-chip memory's by
 * its banks, global memory's one per 128-byte line the lanes touch (an f32 element's, which
 * overcounts bf16 rows).
 */
export function readWavefronts(value: Expr, sample: Sample): number {
  const seen = new Set<Expr>();
  const pending = [value];
  let wavefronts = 0;
  while (pending.length > 0) {
    const x = pending.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    if (x.kind === 'load') {
      const index = address(x.index, sample);
      wavefronts +=
        x.buffer.kind === 'workgroup'
          ? requestWavefronts(index, false)
          : new Set(Array.from(index, (i) => Math.floor(i / LINE_FLOATS))).size;
    }
    pending.push(...operands(x));
  }
  return wavefronts;
}

/** Wavefronts of a staging's first step (lanes at e = lane): its operand's reads and its store. */
export const stagingWavefronts = ({ value, at }: Staging, bf16: boolean): number => {
  const sample = firstLanes();
  return requestWavefronts(address(at, sample), bf16) + readWavefronts(value, sample);
};

/** The staging whose first step takes the fewest wavefronts of memory; the first on a tie. */
export function cheapest(options: Staging[], bf16: boolean): Staging {
  const costs = options.map((o) => stagingWavefronts(o, bf16));
  return options[costs.indexOf(Math.min(...costs))];
}
