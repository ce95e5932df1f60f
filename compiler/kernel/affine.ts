/**
 * Index arithmetic that folds as it builds: constants combine, identities vanish, nested scalings
 * and divisions merge (`(x * 8) / 4` is `x * 2`, `(x / 4) / 2` is `x / 8`, `(x * 8) % 4` is 0),
 * and a `min` whose operand can never be the smaller disappears. Every index of the kernel IR is
 * built here, so the printers never do algebra on text. Indices are unsigned.
 */
import { type Expr, type IndexOp, int } from './ir.ts';

const constant = (e: Expr): number | undefined => (e.kind === 'int' ? e.value : undefined);
/** The value of a literal or a named constant: scalings and divisions by either fold. */
const known = (e: Expr): number | undefined => (e.kind === 'int' || e.kind === 'dim' ? e.value : undefined);
const node = (op: IndexOp, a: Expr, b: Expr): Expr => ({ kind: 'index', op, a, b });

/** A named compile-time constant. */
export const dim = (name: string, value: number): Expr => ({ kind: 'dim', name, value });

/** The terms of a sum, left to right. */
function terms(e: Expr): Expr[] {
  const out: Expr[] = [];
  const pending = [e];
  while (pending.length > 0) {
    const t = pending.pop()!;
    if (t.kind === 'index' && t.op === '+') pending.push(t.b, t.a);
    else out.push(t);
  }
  return out;
}

/** `a + b`, with adjacent constant terms folded into one (so a buffer's base offset stays in front). */
export function add(a: Expr, b: Expr): Expr {
  const out: Expr[] = [];
  for (const t of [...terms(a), ...terms(b)]) {
    const [last, c] = [out.at(-1), constant(t)];
    if (c === 0) continue;
    if (c !== undefined && last?.kind === 'int') out[out.length - 1] = int(last.value + c);
    else out.push(t);
  }
  return out.length === 0 ? int(0) : out.reduce((x, y) => node('+', x, y));
}

/** `a - b`; the caller knows it does not go below zero. */
export function sub(a: Expr, b: Expr): Expr {
  const [x, y] = [constant(a), constant(b)];
  if (x !== undefined && y !== undefined) return int(x - y);
  return y === 0 ? a : node('-', a, b);
}

export function mul(a: Expr, b: Expr | number): Expr {
  const right = typeof b === 'number' ? int(b) : b;
  const [x, y] = [known(a), known(right)];
  if (x === 0 || y === 0) return int(0);
  if (x === 1) return right;
  if (y === 1) return a;
  if (x !== undefined && y !== undefined) return int(x * y);
  if (x !== undefined) return mul(right, a);
  if (y !== undefined && a.kind === 'index' && a.op === '*' && known(a.b) !== undefined)
    return mul(a.a, known(a.b)! * y);
  return node('*', a, right);
}

export function div(a: Expr, b: Expr | number): Expr {
  const right = typeof b === 'number' ? int(b) : b;
  const n = known(right);
  if (n === undefined) return node('/', a, right);
  const x = constant(a);
  if (n === 1) return a;
  if (x !== undefined) return int(Math.floor(x / n));
  if (a.kind === 'index' && a.op === '*' && known(a.b) !== undefined && known(a.b)! % n === 0)
    return mul(a.a, known(a.b)! / n);
  if (a.kind === 'index' && a.op === '/' && known(a.b) !== undefined) return div(a.a, known(a.b)! * n);
  return node('/', a, right);
}

export function mod(a: Expr, b: Expr | number): Expr {
  const right = typeof b === 'number' ? int(b) : b;
  const n = known(right);
  if (n === undefined) return node('%', a, right);
  const x = constant(a);
  if (n === 1) return int(0);
  if (x !== undefined) return int(x % n);
  if (a.kind === 'index' && a.op === '*' && known(a.b) !== undefined && known(a.b)! % n === 0) return int(0);
  return node('%', a, right);
}

/** `a ^ b` (bitwise XOR), for swizzled layouts. */
export function xor(a: Expr, b: Expr): Expr {
  const [x, y] = [constant(a), constant(b)];
  if (x !== undefined && y !== undefined) return int(x ^ y);
  if (y === 0) return a;
  if (x === 0) return b;
  return node('^', a, b);
}

/** The largest value an index can take, as far as its form tells (runtime values are unbounded). */
function upperBound(e: Expr): number {
  switch (e.kind) {
    case 'int':
    case 'dim':
      return e.value;
    case 'min':
      return Math.min(upperBound(e.a), upperBound(e.b));
    case 'index':
      switch (e.op) {
        case '-':
          return upperBound(e.a);
        case '+':
          return upperBound(e.a) + upperBound(e.b);
        case '*':
          return upperBound(e.a) * upperBound(e.b);
        case '/':
          return Math.floor(upperBound(e.a) / Math.max(1, known(e.b) ?? 1));
        case '%':
          return known(e.b) === undefined ? upperBound(e.a) : Math.min(upperBound(e.a), known(e.b)! - 1);
        case '^': {
          // Below the power of two above both operands.
          const bound = Math.max(upperBound(e.a), upperBound(e.b));
          return bound === Infinity ? Infinity : 2 ** Math.ceil(Math.log2(bound + 1)) - 1;
        }
      }
    // falls through
    default:
      return Infinity;
  }
}

/** `min(a, b)`, or the operand that is never larger than the other. */
export function min(a: Expr, b: Expr): Expr {
  const [x, y] = [known(a), known(b)];
  if (x !== undefined && upperBound(b) <= x) return b;
  if (y !== undefined && upperBound(a) <= y) return a;
  return { kind: 'min', a, b };
}
