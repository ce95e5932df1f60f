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
  dot: (ops, [x, y]) => ops.sumAll(ops.zip([x, y], (a, c) => ops.b.mul(a, c))),
  transpose: (ops, [x]) => {
    const r = ops.b.shape(x.id).length;
    return ops.map(x, (id) => ops.b.transpose(id, [...Array(r - 2).keys(), r - 1, r - 2]));
  },
};
