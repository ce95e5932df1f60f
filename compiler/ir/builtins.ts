/** Lowering of the language's built-in functions to primitive IR ops (autodiff then needs no rules of its own for them). */
import type { RowOps, Val } from './rows.ts';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
export const DEFAULT_EPS = 1e-6;

type Builtin = (ops: RowOps, args: Val[], eps: number) => Val;

/** Mean over the last token axis, broadcast back over it. */
function lastAxisMean(ops: RowOps, v: Val, square: boolean): number {
  const b = ops.b;
  const t = ops.token(v);
  if (t.length === 0) throw new Error('normalisation of a scalar');
  const x = square ? b.mul(v.id, v.id) : v.id;
  return b.scale(b.rowSum(x), 1 / t[t.length - 1]);
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
      const centred = b.sub(id, lastAxisMean(ops, x, false));
      const variance = lastAxisMean(ops, { id: centred, rows: x.rows }, true);
      return b.mul(centred, rsqrt(ops, b.add(variance, b.const(eps, b.shape(id)))));
    }),
  rmsnorm: (ops, [x], eps) =>
    ops.map(x, (id) => {
      const b = ops.b;
      return b.mul(id, rsqrt(ops, b.add(lastAxisMean(ops, x, true), b.const(eps, b.shape(id)))));
    }),
  l2norm: (ops, [x], eps) =>
    ops.map(x, (id) => {
      const b = ops.b;
      const t = ops.token(x);
      const sumSq = b.scale(lastAxisMean(ops, x, true), t[t.length - 1]);
      return b.mul(id, rsqrt(ops, b.add(sumSq, b.const(eps, b.shape(id)))));
    }),
  dot: (ops, [x, y]) => ops.sumAll(ops.zip([x, y], (a, c) => ops.b.mul(a, c))),
  transpose: (ops, [x]) => {
    const r = ops.b.shape(x.id).length;
    return ops.map(x, (id) => ops.b.transpose(id, [...Array(r - 2).keys(), r - 1, r - 2]));
  },
};

export const BUILTINS_WITH_EPS = new Set(['layernorm', 'rmsnorm', 'l2norm']);
