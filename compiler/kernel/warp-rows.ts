/**
 * The loops of a stage whose rows warps own (compiler/schedule/warp-rows.ts): warp w takes a
 * contiguous span of the stage's elements (its rows), its lanes every `lanes`-th of them, so a
 * later stage that reads the same rows in the same warp needs only a warp barrier before it.
 */
import type { WarpRows } from '../schedule/kernel.ts';
import { add, div, min, mod, mul } from './affine.ts';
import { type Expr, type Stmt, comment, constant, int, name, namesRead } from './ir.ts';

const tid = name('tid');

/** The names of this invocation's warp and of its lane in it, declared at the kernel's top where read. */
const WARP_NAME = 'warp';
export const LANE_NAME = 'lane';
export const WARP = name(WARP_NAME);
export const LANE = name(LANE_NAME);

/** `const warp = tid / lanes` and `const lane = tid % lanes`, for those of the two that `body` reads. */
export function warpConstants(body: readonly Stmt[], lanes: number | undefined): Stmt[] {
  const used = namesRead(body);
  if (!used.has(WARP_NAME) && !used.has(LANE_NAME)) return [];
  if (!lanes) throw new Error('a kernel with warp-level loops was lowered for a target without warps');
  return [
    comment("This invocation's warp, and its lane in the warp."),
    ...(used.has(WARP_NAME) ? [constant(WARP_NAME, 'index', div(tid, lanes))] : []),
    ...(used.has(LANE_NAME) ? [constant(LANE_NAME, 'index', mod(tid, lanes))] : []),
  ];
}

/**
 * `body(e)` for the elements e < total of this warp's span: `perWarp` consecutive elements from
 * warp × perWarp (the warps past the last row have none).
 */
export function warpSpan(rows: WarpRows, perWarp: number, total: Expr | number, body: Stmt[]): Stmt {
  const from = mul(WARP, perWarp);
  const end = add(from, int(perWarp));
  const whole = typeof total === 'number' && total === rows.warps * perWarp;
  return {
    kind: 'for',
    counter: 'e',
    from: add(from, LANE),
    to: whole ? end : min(end, typeof total === 'number' ? int(total) : total),
    step: int(rows.lanes),
    body,
  };
}

/** `body(r)` for each of this warp's rows r < rows, every lane taking part (a row reduced by shuffles). */
export function warpRowsLoop(rows: WarpRows, body: Stmt[]): Stmt {
  const from = mul(WARP, rows.rowsPerWarp);
  const end = add(from, int(rows.rowsPerWarp));
  const whole = rows.rows === rows.warps * rows.rowsPerWarp;
  return {
    kind: 'for',
    counter: 'e',
    from,
    to: whole ? end : min(end, int(rows.rows)),
    step: int(1),
    body,
  };
}
