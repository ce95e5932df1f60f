/** Lowering of the language's built-in functions to primitive IR ops (autodiff then needs no rules of its own for them). */
import type { RowOps, Val } from './rows.ts';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
export const DEFAULT_EPS = 1e-6;

type Builtin = (ops: RowOps, args: Val[], eps: number) => Val;

/**
 * Mean over the last token axis, of x or of x², kept as an axis of size 1: row statistics stay
 * one value per row until they meet the row again, so nothing is computed once per element.
 * (The checker only lets the norms take vectors and matrices, so the last axis is a token axis.)
 */
function lastAxisMean(ops: RowOps, x: number, square: boolean): number {
  const b = ops.b;
  const s = b.shape(x);
  const summed = b.lastAxisSum(square ? b.mul(x, x) : x);
  return b.scale(summed, 1 / s[s.length - 1]);
}

/** x · rsqrt(statistic + eps), the statistic broadcast from one value per row. */
function normalise(ops: RowOps, x: number, statistic: number, eps: number): number {
  const b = ops.b;
  const inverse = rsqrt(ops, b.add(statistic, b.const(eps, b.shape(statistic))));
  return b.mul(x, b.expand(inverse, b.shape(x)));
}

function sigmoid(ops: RowOps, x: number): number {
  const b = ops.b;
  const one = b.const(1, b.shape(x));
  return b.unary('recip', b.add(one, b.unary('exp', b.neg(x))));
}

const rsqrt = (ops: RowOps, x: number) => ops.b.unary('recip', ops.b.unary('sqrt', x));

/** The numbers 0, 1, ..., n − 1, as a [n] node made of the IR's own ops (tril · 1 counts). */
function iota(ops: RowOps, n: number): number {
  const b = ops.b;
  const counts = b.reshape(b.matmul(b.tril(n), b.const(1, [n, 1])), [n]);
  return b.sub(counts, b.const(1, [n]));
}

/**
 * `v`'s last axis (size m) placed at [offset, offset + m) of a last axis of size `width`, zeros
 * elsewhere: v @ S with the selector S[i, j] = [j = i + offset], built from comparisons of iotas.
 */
function placed(ops: RowOps, v: Val, offset: number, width: number): Val {
  const b = ops.b;
  const t = ops.token(v);
  const m = t.at(-1)!;
  const row = b.expand(b.reshape(b.add(iota(ops, m), b.const(offset, [m])), [m, 1]), [m, width]);
  const column = b.expand(b.reshape(iota(ops, width), [1, width]), [m, width]);
  const half = b.const(0.5, [m, width]);
  const selector = b.mul(
    b.unary('step', b.add(b.sub(column, row), half)),
    b.unary('step', b.add(b.sub(row, column), half)),
  );
  const left = t.length === 1 ? ops.map(v, (id) => b.reshape(id, [...(v.rows ? [ops.R] : []), 1, m])) : v;
  const product = ops.matmul(left, { id: selector, rows: false });
  return t.length === 1 ? ops.map(product, (id) => b.reshape(id, [...(v.rows ? [ops.R] : []), width])) : product;
}

/** max(x, y) = x + relu(y − x): on a tie the gradient goes to x. */
function maximum(ops: RowOps, x: number, y: number): number {
  const b = ops.b;
  const d = b.sub(y, x);
  return b.add(x, b.mul(d, b.unary('step', d)));
}

/** min(x, y) = x − relu(x − y). */
function minimum(ops: RowOps, x: number, y: number): number {
  const b = ops.b;
  const d = b.sub(x, y);
  return b.sub(x, b.mul(d, b.unary('step', d)));
}

/** Largest whole exponent that `pow` unrolls into products (by repeated squaring). */
const MAX_UNROLLED_EXPONENT = 64;

/** x^n for a whole n ≥ 1, by repeated squaring. */
function wholePower(ops: RowOps, x: number, n: number): number {
  const b = ops.b;
  let result: number | undefined;
  let square = x;
  for (let e = n; e > 0; e >>= 1) {
    if (e & 1) result = result === undefined ? square : b.mul(result, square);
    if (e > 1) square = b.mul(square, square);
  }
  return result!;
}

/** x^c for a constant c: products for whole c (any sign of x), else exp(c · log x) (x > 0). */
function power(ops: RowOps, x: number, c: number): number {
  const b = ops.b;
  if (c === 0) return b.const(1, b.shape(x));
  if (c === 0.5) return b.unary('sqrt', x);
  if (c === -0.5) return rsqrt(ops, x);
  if (Number.isInteger(c) && Math.abs(c) <= MAX_UNROLLED_EXPONENT) {
    const p = wholePower(ops, x, Math.abs(c));
    return c > 0 ? p : b.unary('recip', p);
  }
  return b.unary('exp', b.scale(b.unary('log', x), c));
}

export const BUILTINS: Record<string, Builtin> = {
  sum: (ops, [x]) => ops.sumAll(x),
  mean: (ops, [x]) => {
    const n = ops.token(x).reduce((p, d) => p * d, 1);
    return ops.map(ops.sumAll(x), (id) => ops.b.scale(id, 1 / n));
  },
  square: (ops, [x]) => ops.map(x, (id) => ops.b.mul(id, id)),
  sqrt: (ops, [x]) => ops.map(x, (id) => ops.b.unary('sqrt', id)),
  rsqrt: (ops, [x]) => ops.map(x, (id) => rsqrt(ops, id)),
  exp: (ops, [x]) => ops.map(x, (id) => ops.b.unary('exp', id)),
  log: (ops, [x]) => ops.map(x, (id) => ops.b.unary('log', id)),
  tanh: (ops, [x]) => ops.map(x, (id) => ops.b.unary('tanh', id)),
  sigmoid: (ops, [x]) => ops.map(x, (id) => sigmoid(ops, id)),
  relu: (ops, [x]) => ops.map(x, (id) => ops.b.mul(id, ops.b.unary('step', id))),
  silu: (ops, [x]) => ops.map(x, (id) => ops.b.mul(id, sigmoid(ops, id))),
  gelu: (ops, [x]) =>
    ops.map(x, (id) => {
      const b = ops.b;
      const cdf = b.add(b.const(1, b.shape(id)), b.unary('erf', b.scale(id, Math.SQRT1_2)));
      return b.mul(b.scale(id, 0.5), cdf);
    }),
  gelu_tanh: (ops, [x]) =>
    ops.map(x, (id) => {
      const b = ops.b;
      const cube = b.mul(b.mul(id, id), id);
      const inner = b.scale(b.add(id, b.scale(cube, 0.044715)), SQRT_2_OVER_PI);
      return b.mul(b.scale(id, 0.5), b.add(b.const(1, b.shape(id)), b.unary('tanh', inner)));
    }),
  layernorm: (ops, [x], eps) =>
    ops.map(x, (id) => {
      const b = ops.b;
      const centred = b.sub(id, b.expand(lastAxisMean(ops, id, false), b.shape(id)));
      return normalise(ops, centred, lastAxisMean(ops, centred, true), eps);
    }),
  rmsnorm: (ops, [x], eps) => ops.map(x, (id) => normalise(ops, id, lastAxisMean(ops, id, true), eps)),
  l2norm: (ops, [x], eps) =>
    ops.map(x, (id) => {
      const b = ops.b;
      const t = ops.token(x);
      return normalise(ops, id, b.scale(lastAxisMean(ops, id, true), t[t.length - 1]), eps);
    }),
  abs: (ops, [x]) =>
    ops.map(x, (id) => {
      const b = ops.b;
      return b.mul(id, b.sub(b.unary('step', id), b.unary('step', b.neg(id))));
    }),
  min: (ops, [x, y]) => ops.zip([x, y], (a, c) => minimum(ops, a, c)),
  max: (ops, [x, y]) => ops.zip([x, y], (a, c) => maximum(ops, a, c)),
  clamp: (ops, [x, lo, hi]) => ops.zip([x, lo, hi], (a, l, h) => minimum(ops, maximum(ops, a, l), h)),
  pow: (ops, [x, c]) => {
    const exponent = ops.b.constValue(c.id);
    if (exponent === undefined) throw new Error('pow needs a constant exponent');
    return ops.map(x, (id) => power(ops, id, exponent));
  },
  outer: (ops, [x, y]) => {
    const b = ops.b;
    const [m] = ops.token(x);
    const [n] = ops.token(y);
    const rows = x.rows || y.rows;
    const lead = rows ? [ops.R] : [];
    const id = (v: Val) => (rows ? ops.lift(v) : v.id);
    const column = b.expand(b.reshape(id(x), [...lead, m, 1]), [...lead, m, n]);
    const row = b.expand(b.reshape(id(y), [...lead, 1, n]), [...lead, m, n]);
    return { id: b.mul(column, row), rows };
  },
  concat: (ops, [x, y]) => {
    const m = ops.token(x).at(-1)!;
    const n = ops.token(y).at(-1)!;
    return ops.zip([placed(ops, x, 0, m + n), placed(ops, y, m, m + n)], (a, c) => ops.b.add(a, c));
  },
  dot: (ops, [x, y]) => ops.sumAll(ops.zip([x, y], (a, c) => ops.b.mul(a, c))),
  transpose: (ops, [x]) => {
    const r = ops.b.shape(x.id).length;
    return ops.map(x, (id) => ops.b.transpose(id, [...Array(r - 2).keys(), r - 1, r - 2]));
  },
};
