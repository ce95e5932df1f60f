/**
 * A product on tensor cores (schedule/tensor-cores.ts chose it), as kernel-IR statements. Each
 * warp takes 16x8 output tiles in turn, a group of them side by side at a time (groupOf: A's
 * fragment is loaded once for the group); per tile and contraction step its lanes compute the
 * operands' elements (any inlined expression, as the register-tiled loop would read them) and the
 * warp accumulates with mma in f32, then runs the caller's statements on each element of the
 * accumulator (an epilogue: a store, or a whole update of a state's element).
 *
 * A view a bf16 product takes as an operand (or its transpose) is loaded with ldmatrix from the
 * view's bf16 copy (TensorCorePlan.copies), .trans where the copy's rows run across the fragment's.
 * Any other operand reaches its fragment one of two ways, whichever takes fewer wavefronts of
 * memory a step (on-chip memory's by its banks, global memory's by the lines it touches):
 * - staged: the lanes store it, a contraction slab at a time, in the warp's own slice of on-chip
 *   memory (A's 16 rows, then B's 8 columns as rows, both running along the contraction; as bf16,
 *   or as f32 for tf32x3, which splits them in registers), and the warp loads fragments with
 *   ldmatrix (the 16-byte rows it reads are 8 bf16 or 4 f32, so one pattern of addresses serves
 *   both). Only the warp exchanges data there, so warp barriers suffice.
 * - in place: each lane computes the elements its fragment registers hold and packs them there,
 *   with no store, ldmatrix or barrier. It wins where the staging's reads conflict anyway (a
 *   column of a row-major buffer: B of `x @ W`, either operand of a product along the tokens) or
 *   read nothing (a mask computed from indices), and loses where a warp's lanes would read 8 rows
 *   of a row-major buffer at the same column (A of `x @ W`).
 * Rows and columns past the product's extents are zeros and never reach the epilogue.
 */
import { LITERALS, Index } from './tensor-index.ts';
import { add, div, mod, mul } from './affine.ts';
import { type Expr, type Stmt, assign, comment, compare, float, int, name, variable } from './ir.ts';
import { cheapest, firstLanes, readWavefronts, type Staging, stagingWavefronts } from './operand-cost.ts';
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
  /** A view's bf16 copy A or B is read from, where it has one (TensorCorePlan.copies). */
  copyA?: CopiedOperand;
  copyB?: CopiedOperand;
}

/**
 * A view's copy as an operand reads it: rows `rowStride` bf16 elements apart from element `start`
 * of on-chip memory; `transposed` where the operand is the view's transpose, so A's contraction or
 * B's columns run down the copy's rows.
 */
export interface CopiedOperand {
  start: number;
  rowStride: number;
  transposed: boolean;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const range = (n: number) => [...Array(n).keys()];

/** `body` when every condition holds (nested ifs: the kernel IR has no conjunction). */
function guarded(conditions: (Expr | undefined)[], body: Stmt[]): Stmt[] {
  return conditions.reduceRight<Stmt[]>((inner, c) => (c ? [{ kind: 'if', condition: c, body: inner }] : inner), body);
}

/** One element of an operand fragment read in place: its value, zero unless `conditions` hold. */
interface FragmentElement {
  conditions: (Expr | undefined)[];
  value: Expr;
}

/** How an operand reaches its fragment, for the comment on each product. */
const describeReads = (way: OperandWay) =>
  ({
    'in place': 'read in place into its fragment',
    staged: "staged in the warp's slice and loaded with ldmatrix",
    copy: "loaded with ldmatrix from the view's bf16 copy",
  })[way];

/** How an operand reaches its fragment: staged, read in place, or loaded from a view's copy. */
type OperandWay = 'staged' | 'in place' | 'copy';

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
  const bRow = (j: Expr) => add(slice, mul(add(int(plan.aRows), j), plan.rowStride));
  const within = (i: Expr, extent: number, padded: boolean) => (padded ? compare('<', i, int(extent)) : undefined);
  const padK = p.contraction % slab !== 0;

  // In place, lane l holds the elements of the fragment layout (tttc_mma.cuh; g = l / 4, q = l % 4):
  // register j of A at row g (+ 8 for odd j) and of B at column g, their contraction index
  // perRegister q (+ the step's second half from A's j = 2 and B's j = 1), two bf16 or one f32.
  const perRegister = elementBytes === 2 ? 2 : 1;
  const inStep = (kStep: Expr, half: number, h: number) =>
    add(add(kStep, int((half * mma.k) / 2 + h)), mul(mod(lane, 4), perRegister));
  const g = div(lane, 4);
  const fragmentA = (kStep: Expr, kPadded = padK): FragmentElement[][] =>
    range(4).map((j) => {
      const row = add(add(row0, g), int(8 * (j % 2)));
      return range(perRegister).map((h) => {
        const k = inStep(kStep, Math.floor(j / 2), h);
        return {
          conditions: [within(row, m, m % mma.m !== 0), within(k, p.contraction, kPadded)],
          value: p.a(batch, row, k),
        };
      });
    });
  const fragmentB = (kStep: Expr, t: number, kPadded = padK): FragmentElement[][] =>
    range(2).map((j) => {
      const col = add(add(col0, int(t * mma.n)), g);
      return range(perRegister).map((h) => {
        const k = inStep(kStep, j, h);
        return {
          conditions: [within(col, n, n % groupColumns !== 0), within(k, p.contraction, kPadded)],
          value: p.b(batch, k, col),
        };
      });
    });
  /** A fragment's registers set from elements computed in place; a padded element is zero where it is out of range. */
  const packed = (fragment: string, registers: FragmentElement[][]): Stmt[] => {
    const padding: Stmt[] = [];
    const packs = registers.map((elements, register): Stmt => {
      const values = elements.map(({ conditions, value }, h) => {
        if (conditions.every((c) => c === undefined)) return value;
        const padded = `${fragment}${register}${perRegister === 1 ? '' : ['lo', 'hi'][h]}`;
        padding.push(variable(padded, 'float', float(0)), ...guarded(conditions, p.shared([assign(padded, value)])));
        return name(padded);
      });
      return { kind: 'pack-fragment', fragment, register, values };
    });
    // A block of its own: a slab's steps each declare their padded elements.
    return padding.length > 0 ? [{ kind: 'block', body: [...padding, ...p.shared(packs)] }] : p.shared(packs);
  };

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
  // Each operand is staged or read in place, whichever takes fewer wavefronts a step (in place on
  // a tie: no stores, ldmatrix or warp barriers). Staged, a step stores the operand's rows (each
  // request as the staging's first) and ldmatrix reads them, 128 bytes a phase; in place, each
  // lane reads the elements its fragment registers hold.
  const sample = firstLanes();
  const inPlaceWavefronts = (registers: FragmentElement[][]) =>
    registers.flat().reduce((w, x) => w + readWavefronts(x.value, sample), 0);
  const stagedWavefronts = (staging: Staging, rows: number) =>
    ((rows * mma.k) / WARP_LANES) * stagingWavefronts(staging, elementBytes === 2) +
    (rows * mma.k * elementBytes) / 128;
  const way = (copy: CopiedOperand | undefined, inPlace: () => boolean): OperandWay =>
    copy ? 'copy' : inPlace() ? 'in place' : 'staged';
  const aWay = way(p.copyA, () => inPlaceWavefronts(fragmentA(k0)) <= stagedWavefronts(stageA, mma.m));
  const bWay = way(p.copyB, () => inPlaceWavefronts(fragmentB(k0, 0)) <= stagedWavefronts(stageB, mma.n));

  // With nothing staged, the contraction goes a step at a time: only a step past its end is padded.
  const unstaged = aWay !== 'staged' && bWay !== 'staged';
  const slabStep = unstaged ? mma.k : slab;
  const slabCount = Math.ceil(p.contraction / slabStep);
  const kPadded = unstaged ? p.contraction % mma.k !== 0 : padK;
  const kSlab = slabCount > 1 ? name('k0') : int(0);

  const fragment = (role: 'a' | 'b', index: Expr, transpose: boolean): Stmt => ({
    kind: 'load-fragment',
    fragment: role === 'a' ? 'fa' : 'fb',
    role,
    index,
    elementBytes,
    transpose,
  });
  // ldmatrix: lane l names row l % 16 of A at matrix column l / 16 of the step, and row l % 8 of B
  // (transposed) at matrix column (l / 8) % 2: the four and two 8x8 (b16) matrices of the
  // fragments. A tf32 fragment is the same registers: its matrix rows hold 4 f32 where bf16's hold 8.
  // A group's tiles share A's fragment; each loads B's from its own 8 rows of the slice.
  // From a view's copy the same matrices come from its rows (the operand the view) or, with
  // .trans, from 8x8 blocks of its columns (the operand its transpose, whose contraction runs down
  // the copy for A, whose columns do for B).
  const fromCopy = (c: CopiedOperand, row: Expr, column: Expr) => add(add(int(c.start), mul(row, c.rowStride)), column);
  const loadA = (s: number): Stmt[] => {
    const kStep = add(kSlab, int(s * mma.k));
    const c = p.copyA;
    if (aWay === 'in place') return packed('fa', fragmentA(kStep, kPadded));
    if (aWay === 'staged')
      return [fragment('a', add(add(aRow(mod(lane, 16)), int(s * mma.k)), mul(div(lane, 16), matrixColumns)), false)];
    return [
      c!.transposed
        ? fragment(
            'a',
            fromCopy(c!, add(add(kStep, mul(div(lane, 16), 8)), mod(lane, 8)), add(row0, mul(mod(div(lane, 8), 2), 8))),
            true,
          )
        : fragment('a', fromCopy(c!, add(row0, mod(lane, 16)), add(kStep, mul(div(lane, 16), 8))), false),
    ];
  };
  const loadB = (s: number, t: number): Stmt[] => {
    const kStep = add(kSlab, int(s * mma.k));
    const col = add(col0, int(t * mma.n));
    const c = p.copyB;
    if (bWay === 'in place') return packed('fb', fragmentB(kStep, t, kPadded));
    if (bWay === 'staged')
      return [
        fragment(
          'b',
          add(add(bRow(add(mod(lane, 8), int(t * mma.n))), int(s * mma.k)), mul(mod(div(lane, 8), 2), matrixColumns)),
          false,
        ),
      ];
    return [
      c!.transposed
        ? fragment('b', fromCopy(c!, add(col, mod(lane, 8)), add(kStep, mul(mod(div(lane, 8), 2), 8))), false)
        : fragment('b', fromCopy(c!, add(kStep, mod(lane, 16)), col), true),
    ];
  };
  const step = (s: number): Stmt[] => [
    ...loadA(s),
    ...range(group).flatMap((t): Stmt[] => [
      ...loadB(s, t),
      { kind: 'mma', c: accumulator(t), a: 'fa', b: 'fb', operands: plan.operands },
    ]),
  ];
  // Read in place, a slab is one step. Staged, the second warp barrier keeps the next slab's (or
  // tile's, or product's) staging from overwriting rows another lane has yet to load.
  const slabBody: Stmt[] = unstaged
    ? step(0)
    : [
        ...(aWay === 'staged' ? [stage(stageA)] : []),
        ...(bWay === 'staged' ? [stage(stageB)] : []),
        { kind: 'warp-barrier' },
        ...range(slab / mma.k).flatMap(step),
        { kind: 'warp-barrier' },
      ];
  const accumulate: Stmt[] =
    slabCount > 1
      ? [
          {
            kind: 'for',
            counter: 'k0',
            from: int(0),
            to: int(slabCount * slabStep),
            step: int(slabStep),
            body: slabBody,
          },
        ]
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
        ? [comment(`A warp's ${group} tiles side by side: A's fragment loaded once, B's for each tile.`)]
        : []),
      comment(`A ${describeReads(aWay)}, B ${describeReads(bWay)}.`),
      { kind: 'fragment', name: 'fa', role: 'a' },
      { kind: 'fragment', name: 'fb', role: 'b' },
      ...range(group).map((t): Stmt => ({ kind: 'fragment', name: accumulator(t), role: 'c' })),
      ...(p.live ? [{ kind: 'if' as const, condition: p.live, body: accumulate }] : accumulate),
      ...epilogue,
    ],
  };
}
