/**
 * Reverse-mode automatic differentiation: one vector-Jacobian rule per IR op.
 * The adjoints are ordinary IR built into the same builder, so they can be differentiated again.
 */
import { type Builder, type Node, size } from '../ir/ir.ts';

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** Sum `g` (shaped like the expand's output) back down to the expand's input shape. */
function unexpand(b: Builder, g: number, to: readonly number[]): number {
  const from = b.shape(g);
  const off = from.length - to.length;
  const axes: number[] = [];
  for (let d = 0; d < from.length; d++) if (d < off || (to[d - off] === 1 && from[d] !== 1)) axes.push(d);
  return b.reshape(b.sum(g, axes), to);
}

/** The adjoints of node `n`'s arguments given its adjoint `g`, or undefined where none flows. */
function rule(b: Builder, n: Node, g: number): (number | undefined)[] {
  const [x, y] = n.args;
  const out = n.id;
  switch (n.op.kind) {
    case 'input':
    case 'const':
    case 'tril':
      return [];
    case 'unary':
      switch (n.op.fn) {
        case 'neg':
          return [b.neg(g)];
        case 'exp':
          return [b.mul(g, out)];
        case 'log':
          return [b.div(g, x)];
        case 'tanh':
          return [b.mul(g, b.sub(b.const(1, n.shape), b.mul(out, out)))];
        case 'sqrt':
          return [b.div(b.scale(g, 0.5), out)];
        case 'recip':
          return [b.neg(b.mul(g, b.mul(out, out)))];
        case 'erf':
          return [b.mul(g, b.scale(b.unary('exp', b.neg(b.mul(x, x))), TWO_OVER_SQRT_PI))];
        case 'step':
          return [undefined];
      }
      break;
    case 'binary':
      switch (n.op.fn) {
        case 'add':
          return [g, g];
        case 'sub':
          return [g, b.neg(g)];
        case 'mul':
          // x · x (a square) gets one contribution, 2·g·x, not two equal ones to add.
          return x === y ? [b.scale(b.mul(g, x), 2), undefined] : [b.mul(g, y), b.mul(g, x)];
        case 'div':
          return [b.div(g, y), b.neg(b.div(b.mul(g, out), y))];
      }
      break;
    case 'matmul':
      return [b.matmul(g, b.mT(y)), b.matmul(b.mT(x), g)];
    case 'sum': {
      const xs = b.shape(x);
      const kept = xs.map((d, i) => (n.op.kind === 'sum' && n.op.axes.includes(i) ? 1 : d));
      return [b.expand(b.reshape(g, kept), xs)];
    }
    case 'expand':
      return [unexpand(b, g, b.shape(x))];
    case 'reshape':
      return [b.reshape(g, b.shape(x))];
    case 'transpose': {
      const inverse = new Array<number>(n.op.perm.length);
      n.op.perm.forEach((p, i) => (inverse[p] = i));
      return [b.transpose(g, inverse)];
    }
  }
  throw new Error(`no VJP rule for ${JSON.stringify(n.op)}`);
}

/**
 * Adjoints of `wrt` (any nodes, inputs or intermediates) for the output node `output` with
 * cotangent `seed` (same shape as `output`). A node with no path to the output gets zeros.
 */
export function vjp(b: Builder, output: number, seed: number, wrt: readonly number[]): number[] {
  // Only nodes between some `wrt` node and the output carry adjoints worth building.
  const top = Math.max(output, ...wrt);
  const fromWrt = new Uint8Array(top + 1);
  for (const w of wrt) fromWrt[w] = 1;
  for (let id = Math.min(...wrt); id <= output; id++) if (b.node(id).args.some((a) => fromWrt[a])) fromWrt[id] = 1;

  const adjoint = new Map<number, number>([[output, seed]]);
  for (let id = output; id >= 0; id--) {
    const g = adjoint.get(id);
    if (g === undefined || !fromWrt[id]) continue;
    const n = b.node(id);
    const grads = rule(b, n, g);
    n.args.forEach((a, i) => {
      const ga = grads[i];
      if (ga === undefined || !fromWrt[a]) return;
      const prev = adjoint.get(a);
      adjoint.set(a, prev === undefined ? ga : b.add(prev, ga));
    });
  }
  return wrt.map((w) => adjoint.get(w) ?? b.const(0, b.shape(w)));
}

/** Gradient of a scalar node with respect to `wrt`. */
export function grad(b: Builder, scalar: number, wrt: readonly number[]): number[] {
  if (size(b.shape(scalar)) !== 1) throw new Error('grad needs a scalar output; use vjp with a seed');
  return vjp(b, scalar, b.const(1, b.shape(scalar)), wrt);
}
