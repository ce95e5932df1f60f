/**
 * The mini-batch walk: how a call of T tokens starting at position `start` of a mini-batch of K
 * is cut into chunks of at most `rows` tokens that never cross a mini-batch boundary. Its step is
 * defined once, as data (`WALK_STEP`): `chunks` evaluates it here for the reference executor and
 * the runtime, and the kernel lowering (compiler/kernel/walk.ts) turns the same definition into
 * kernel statements, so every backend walks the same chunks by construction.
 */

/** The values a walk expression reads: the call's (`start`, `T`), the program's (`K`, `rows`) and the walk's own. */
export type WalkValue = 'start' | 'T' | 'K' | 'rows' | 'token' | 'position' | 'count';

export type WalkExpr =
  WalkValue | number | { op: 'add' | 'sub' | 'mod' | 'min' | 'eq' | 'lt'; args: readonly [WalkExpr, WalkExpr] };

const op =
  (o: 'add' | 'sub' | 'mod' | 'min' | 'eq' | 'lt') =>
  (a: WalkExpr, b: WalkExpr): WalkExpr => ({ op: o, args: [a, b] });
const [add, sub, mod, min, eq, lt] = (['add', 'sub', 'mod', 'min', 'eq', 'lt'] as const).map(op);

/** One step of the walk, in order: while `more`, take `count` tokens, note whether they `end` the mini-batch, advance. */
export const WALK_STEP = {
  /** The walk starts at the call's first token, at its position in the mini-batch. */
  init: { token: 0, position: 'start' },
  more: lt('token', 'T'),
  /** As many tokens as the rows hold, the mini-batch has left, and the call has left. */
  count: min(min('rows', sub('K', 'position')), sub('T', 'token')),
  /** The chunk reaches the mini-batch's last row: the state commits after it. */
  ends: eq(add('position', 'count'), 'K'),
  next: { token: add('token', 'count'), position: mod(add('position', 'count'), 'K') },
} as const satisfies {
  init: { token: WalkExpr; position: WalkExpr };
  more: WalkExpr;
  count: WalkExpr;
  ends: WalkExpr;
  next: { token: WalkExpr; position: WalkExpr };
};

/** The value of a walk expression (comparisons give 1 or 0). */
function evaluateWalk(e: WalkExpr, values: Readonly<Partial<Record<WalkValue, number>>>): number {
  if (typeof e === 'number') return e;
  if (typeof e === 'string') {
    const v = values[e];
    if (v === undefined) throw new Error(`the walk reads ${e} before it has a value`);
    return v;
  }
  const [a, b] = e.args.map((x) => evaluateWalk(x, values));
  switch (e.op) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mod':
      return a % b;
    case 'min':
      return Math.min(a, b);
    case 'eq':
      return a === b ? 1 : 0;
    case 'lt':
      return a < b ? 1 : 0;
  }
}

/**
 * One chunk: `count` tokens from token `token` on, at mini-batch positions
 * [position, position + count), in the first `count` rows of the mini-batch program.
 */
export interface Chunk {
  token: number;
  position: number;
  count: number;
  /** The chunk reaches the mini-batch's last row, so the state commits after it. */
  ends: boolean;
}

export function chunks(start: number, T: number, K: number, rows: number): Chunk[] {
  const out: Chunk[] = [];
  const call = { start, T, K, rows };
  let token = evaluateWalk(WALK_STEP.init.token, call);
  let position = evaluateWalk(WALK_STEP.init.position, call);
  while (evaluateWalk(WALK_STEP.more, { ...call, token, position })) {
    const at = { ...call, token, position };
    const count = evaluateWalk(WALK_STEP.count, at);
    const ends = evaluateWalk(WALK_STEP.ends, { ...at, count }) === 1;
    out.push({ token, position, count, ends });
    [token, position] = [
      evaluateWalk(WALK_STEP.next.token, { ...at, count }),
      evaluateWalk(WALK_STEP.next.position, { ...at, count }),
    ];
  }
  return out;
}
