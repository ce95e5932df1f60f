/**
 * A product on tensor cores (schedule/tensor-cores.ts chose it), as kernel-IR statements. Each
 * warp takes 16x8 output tiles in turn, a group of them side by side at a time (groupOf: A's rows
 * are staged and loaded once for the group); per tile and contraction slab its lanes compute the
 * operands' elements (any inlined expression, as the register-tiled loop would read them), store
 * them in the warp's own slice of on-chip memory (A's 16 rows, then B's 8 columns as rows, both
 * running along the contraction; as bf16, or as f32 for tf32x3, which splits them in registers),
 * and the warp loads fragments with ldmatrix and accumulates with mma in f32 (the 16-byte rows
 * ldmatrix reads are 8 bf16 or 4 f32, so one pattern of addresses serves both), then runs the
 * caller's statements on each element of the accumulator (an
 * epilogue: a store, or a whole update of a state's element). Only the warp exchanges data there,
 * so warp barriers suffice; rows and columns past the product's extents are staged as zeros and
 * never reach the epilogue.
 */
import { LITERALS, Index } from './tensor-index.ts';
import { add, div, mod, mul } from './affine.ts';
import { type Expr, type Stmt, assign, comment, compare, float, int, name, operands, variable } from './ir.ts';
import { requestWavefronts } from './banks.ts';
import { address, LANES, lanes, type Sample } from './lanes.ts';
import { groupOf, mmaTile, stagedBytes, WARP_LANES } from '../schedule/tensor-cores.ts';
import { LANE as lane, WARP } from './warp-rows.ts';
import type { TensorCorePlan } from '../schedule/kernel.ts';

export interface TensorCoreProduct {
  /** The product's shape: batch axes, then rows and columns. */
  shape: readonly number[];
  contraction: number;
  /** Where the warps' staging slices start in on-chip memory, in floats. */
  staging: number;
  /** A's element at (batch, row, p) and B's at (batch, p, col): the operands as the product reads them. */
  a(batch: Expr[], row: Expr, p: Expr): Expr;
  b(batch: Expr[], p: Expr, col: Expr): Expr;
  /**
   * What becomes of the product's element at (batch, row, col), run on each accumulator element in
   * registers: stored to the product's buffer, or the per-element statements of the stage that
   * reads it (a state's update).
   */
  epilogue(batch: Expr[], row: Expr, col: Expr, value: Expr): Stmt[];
  /** Names the values a group of statements reads more than once. */
  shared(group: Stmt[]): Stmt[];
  /** When present, the product is zero unless this holds (it is the same for every invocation). */
  live?: Expr;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const range = (n: number) => [...Array(n).keys()];

/** `body` when every condition holds (nested ifs: the kernel IR has no conjunction). */
function guarded(conditions: (Expr | undefined)[], body: Stmt[]): Stmt[] {
  return conditions.reduceRight<Stmt[]>((inner, c) => (c ? [{ kind: 'if', condition: c, body: inner }] : inner), body);
}

/** One operand's staging: element `e` < `count` is `value` (zero unless `conditions` hold), staged at `at`. */
interface Staging {
  count: number;
  conditions: (Expr | undefined)[];
  value: Expr;
  at: Expr;
}

/**
 * The staging whose first step (lanes at e = lane) takes the fewest wavefronts of on-chip memory,
 * its operand's reads and its store together; the first on a tie.
 */
function cheapest(options: Staging[], bf16: boolean): Staging {
  const sample: Sample = {
    env: new Map([['e', lanes((l) => l)]]),
    active: new Uint8Array(LANES).fill(1),
    weight: 1,
    known: new Map(),
  };
  const cost = ({ value, at }: Staging) => {
    const reads = new Set<Expr>();
    const pending = [value];
    while (pending.length > 0) {
      const x = pending.pop()!;
      if (reads.has(x)) continue;
      if (x.kind === 'load' && x.buffer.kind === 'workgroup') reads.add(x);
      pending.push(...operands(x));
    }
    let wavefronts = requestWavefronts(address(at, sample), bf16);
    for (const x of reads) if (x.kind === 'load') wavefronts += requestWavefronts(address(x.index, sample), false);
    return wavefronts;
  };
  const costs = options.map(cost);
  return options[costs.indexOf(Math.min(...costs))];
}

export function lowerTensorCoreProduct(plan: TensorCorePlan, invocations: number, p: TensorCoreProduct): Stmt {
  const r = p.shape.length;
  const [m, n] = [p.shape[r - 2], p.shape[r - 1]];
  const mma = mmaTile(plan.operands);
  const elementBytes = stagedBytes(plan.operands);
  /** Staged elements in one 16-byte row of an ldmatrix matrix. */
  const matrixColumns = 16 / elementBytes;
  const slab = Math.min(plan.slab, roundUp(p.contraction, mma.k));
  const slabs = Math.ceil(p.contraction / slab);
  const warps = invocations / WARP_LANES;
  const group = groupOf(plan, p.shape, warps);
  /** Output columns of a warp's group of tiles. */
  const groupColumns = mma.n * group;
  const tiles = [...p.shape.slice(0, r - 2), Math.ceil(m / mma.m), Math.ceil(n / groupColumns)];
  const tileCount = tiles.reduce((x, y) => x * y, 1);
  /** The accumulator of the group's tile t. */
  const accumulator = (t: number) => (group === 1 ? 'fc' : `fc${t}`);

  const e = name('e');
  const x = name('x');
  const at = Index.flat(tiles, name('tile'), LITERALS).dims();
  const batch = at.slice(0, r - 2);
  const row0 = mul(at[r - 2], mma.m);
  const col0 = mul(at[r - 1], groupColumns);
  const k0 = slabs > 1 ? name('k0') : int(0);
  // This warp's slice: A's rows, then B's columns, each `rowStride` staged elements apart.
  const slice = add(int((p.staging * 4) / elementBytes), mul(WARP, plan.warpElements));
  const aRow = (i: Expr) => add(slice, mul(i, plan.rowStride));
  const bRow = (j: Expr) => add(slice, mul(add(int(mma.m), j), plan.rowStride));
  const within = (i: Expr, extent: number, padded: boolean) => (padded ? compare('<', i, int(extent)) : undefined);
  const padK = p.contraction % slab !== 0;

  const store = (index: Expr, value: Expr): Stmt =>
    elementBytes === 2
      ? { kind: 'store-bf16', index, value }
      : { kind: 'store', buffer: { kind: 'workgroup' }, index, value };
  /** `count` elements staged by the warp's lanes: element `e` is value(e) at staged position(e). */
  const stage = ({ count, conditions, value, at }: Staging): Stmt => ({
    kind: 'for',
    counter: 'e',
    from: lane,
    to: int(count),
    step: int(WARP_LANES),
    body: conditions.some((c) => c !== undefined)
      ? [variable('x', 'float', float(0)), ...guarded(conditions, p.shared([assign('x', value)])), store(at, x)]
      : p.shared([store(at, value)]),
  });
  // Consecutive lanes take consecutive elements of A's rows (contraction columns) or of its
  // contraction columns (rows), and of B's contraction rows (output columns) or of its output
  // columns (contraction rows): whichever order's reads take fewer wavefronts, which is the one
  // that walks the operand along memory (an operand read transposed runs along the other axis).
  // A third order gives a warp's store 8 rows of 4 columns, the rows ldmatrix reads together,
  // which fall in distinct banks: f32 rows (tf32x3) are 20 words apart, so a store of two 16-column
  // rows puts 4 lanes of each in the same banks.
  const quads = (rows: number): Expr[] => [mod(div(e, 4), rows), add(mul(div(e, 4 * rows), 4), mod(e, 4))];
  const stageA = cheapest(
    [[div(e, slab), mod(e, slab)], [mod(e, mma.m), div(e, mma.m)], quads(mma.m)].map(([ai, aq]) => ({
      count: mma.m * slab,
      conditions: [within(add(row0, ai), m, m % mma.m !== 0), within(add(k0, aq), p.contraction, padK)],
      value: p.a(batch, add(row0, ai), add(k0, aq)),
      at: add(aRow(ai), aq),
    })),
    elementBytes === 2,
  );
  const stageB = cheapest(
    [[mod(e, groupColumns), div(e, groupColumns)], [div(e, slab), mod(e, slab)], quads(groupColumns)].map(
      ([bj, bq]) => ({
        count: groupColumns * slab,
        conditions: [within(add(col0, bj), n, n % groupColumns !== 0), within(add(k0, bq), p.contraction, padK)],
        value: p.b(batch, add(k0, bq), add(col0, bj)),
        at: add(bRow(bj), bq),
      }),
    ),
    elementBytes === 2,
  );
  // ldmatrix: lane l names row l % 16 of A at matrix column l / 16 of the step, and row l % 8 of B
  // (transposed) at matrix column (l / 8) % 2: the four and two 8x8 (b16) matrices of the
  // fragments. A tf32 fragment is the same registers: its matrix rows hold 4 f32 where bf16's hold 8.
  // A group's tiles share A's fragment; each loads B's from its own 8 rows of the slice.
  const steps = range(slab / mma.k).flatMap((s): Stmt[] => [
    {
      kind: 'load-fragment',
      fragment: 'fa',
      role: 'a',
      index: add(add(aRow(mod(lane, 16)), int(s * mma.k)), mul(div(lane, 16), matrixColumns)),
      elementBytes,
      transpose: false,
    },
    ...range(group).flatMap((t): Stmt[] => [
      {
        kind: 'load-fragment',
        fragment: 'fb',
        role: 'b',
        index: add(
          add(bRow(add(mod(lane, 8), int(t * mma.n))), int(s * mma.k)),
          mul(mod(div(lane, 8), 2), matrixColumns),
        ),
        elementBytes,
        transpose: false,
      },
      { kind: 'mma', c: accumulator(t), a: 'fa', b: 'fb', operands: plan.operands },
    ]),
  ]);
  // The second warp barrier keeps the next slab's (or tile's, or product's) staging from
  // overwriting rows another lane has yet to load.
  const slabBody: Stmt[] = [stage(stageA), stage(stageB), { kind: 'warp-barrier' }, ...steps, { kind: 'warp-barrier' }];
  const accumulate: Stmt[] =
    slabs > 1
      ? [{ kind: 'for', counter: 'k0', from: int(0), to: int(slabs * slab), step: int(slab), body: slabBody }]
      : slabBody;

  // Accumulator element i of lane l: row l / 4 (+ 8 for i >= 2), column 2 (l % 4) + i % 2. A loop
  // (nvcc unrolls it), so that each element's statements have a scope of their own.
  const i = name('i');
  const row = add(add(row0, div(lane, 4)), mul(div(i, 2), 8));
  const epilogue = range(group).map((t): Stmt => {
    const col = add(add(add(col0, int(t * mma.n)), mul(mod(lane, 4), 2)), mod(i, 2));
    const value: Expr = { kind: 'fragment-element', fragment: accumulator(t), element: i };
    return {
      kind: 'for',
      counter: 'i',
      from: int(0),
      to: int(4),
      step: int(1),
      body: guarded(
        [within(row, m, m % mma.m !== 0), within(col, n, n % groupColumns !== 0)],
        p.epilogue(batch, row, col, value),
      ),
    };
  });
  return {
    kind: 'for',
    counter: 'tile',
    from: WARP,
    to: int(tileCount),
    step: int(invocations / WARP_LANES),
    body: [
      ...(group > 1
        ? [
            comment(
              `A warp's ${group} tiles side by side: A's rows staged and loaded once, B's 8 columns for each tile.`,
            ),
          ]
        : []),
      { kind: 'fragment', name: 'fa', role: 'a' },
      { kind: 'fragment', name: 'fb', role: 'b' },
      ...range(group).map((t): Stmt => ({ kind: 'fragment', name: accumulator(t), role: 'c' })),
      ...(p.live ? [{ kind: 'if' as const, condition: p.live, body: accumulate }] : accumulate),
      ...epilogue,
    ],
  };
}
