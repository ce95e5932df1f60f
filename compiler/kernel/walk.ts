/**
 * The mini-batch walk as kernel statements, from the one definition in core/walk.ts: the kernel
 * declares `token` and `position`, loops while the definition says, names each chunk's `count`
 * and `ends`, and advances as it says. Row r of a chunk then holds token `token + r`.
 */
import { WALK_STEP, type WalkExpr, type WalkValue } from '../../core/walk.ts';
import { add, min, mod, sub } from './affine.ts';
import { type Expr, type Stmt, assign, blank, comment, compare, constant, int, name, variable } from './ir.ts';

/** The kernel's spelling of the values the walk reads from the call and the program. */
export type WalkInputs = Record<'start' | 'T' | 'K' | 'rows', Expr>;

/** What a chunk's rows are, said where the walk starts. */
export const ROWS_COMMENT = comment('Row r of a chunk holds token `token + r`, at mini-batch position `position + r`.');

/** The names the walk declares. */
export const WALK_NAMES = { token: 'token', position: 'position', count: 'count', ends: 'ends' } as const;

export function walkExpr(e: WalkExpr, inputs: WalkInputs): Expr {
  if (typeof e === 'number') return int(e);
  if (typeof e === 'string')
    return e in inputs ? inputs[e as keyof WalkInputs] : name(WALK_NAMES[e as Exclude<WalkValue, keyof WalkInputs>]);
  const [a, b] = e.args.map((x) => walkExpr(x, inputs));
  switch (e.op) {
    case 'add':
      return add(a, b);
    case 'sub':
      return sub(a, b);
    case 'mod':
      return mod(a, b);
    case 'min':
      return min(a, b);
    case 'eq':
      return compare('==', a, b);
    case 'lt':
      return compare('<', a, b);
  }
}

/**
 * The chunks in the order a walk takes them, as the read-ahead (read-ahead.ts) needs them: the
 * first token of the chunk taken first and of the chunk taken after the current one, each with
 * whether the call has that chunk.
 */
export interface ChunkOrder {
  first: { token: Expr; exists: Expr };
  next: { token: Expr; exists: Expr };
}

/** The forward walk's order: the call's first token first, then where each chunk ends. */
export function forwardOrder(inputs: WalkInputs): ChunkOrder {
  const at = (token: Expr) => ({ token, exists: compare('<', token, inputs.T) });
  return { first: at(walkExpr(WALK_STEP.init.token, inputs)), next: at(walkExpr(WALK_STEP.next.token, inputs)) };
}

const reads = (e: WalkExpr, v: WalkValue): boolean =>
  e === v || (typeof e === 'object' && e.args.some((x) => reads(x, v)));

/** The walk around `chunk`, the statements that process one chunk. */
export function lowerWalk(inputs: WalkInputs, chunk: readonly Stmt[]): Stmt[] {
  const step = WALK_STEP;
  // The kernel advances token, then position: the position's step must not read the new token.
  if (reads(step.next.position, 'token')) throw new Error('the walk advances position from token');
  const e = (x: WalkExpr) => walkExpr(x, inputs);
  return [
    variable(WALK_NAMES.token, 'index', e(step.init.token)),
    variable(WALK_NAMES.position, 'index', e(step.init.position)),
    {
      kind: 'while',
      condition: e(step.more),
      body: [
        constant(WALK_NAMES.count, 'index', e(step.count)),
        constant(WALK_NAMES.ends, 'bool', e(step.ends)),
        ...chunk,
        blank,
        assign(WALK_NAMES.token, e(step.next.token)),
        assign(WALK_NAMES.position, e(step.next.position)),
      ],
    },
  ];
}
