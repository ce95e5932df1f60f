/**
 * The value of a tensor-IR node at an index, as a kernel-IR expression: unbuffered nodes are
 * inlined, buffered ones read from their buffer. Values are built once per (node, index), so a
 * value read twice is one expression object that share.ts can name.
 */
import type { Node, Program } from '../ir/ir.ts';
import { type Expr, type FloatOp, compare, exprKey, float, floatOp, int, select } from './ir.ts';
import type { Index } from './tensor-index.ts';

export interface Sources {
  isBuffered(node: number): boolean;
  /** Read element `at` of a buffered node. */
  buffer(node: number, at: Index): Expr;
  /** An input that has no buffer (scale, params, states, accumulators, the walk's mask, commit, keep). */
  input(name: string, index: Index): Expr;
}

const BINARY: Record<string, FloatOp> = { add: '+', sub: '-', mul: '*', div: '/' };

export class Values {
  private readonly built = new Map<string, Expr>();

  constructor(
    private readonly program: Program,
    private readonly sources: Sources,
  ) {}

  /** The node's value at `index`; `fresh` computes a buffered node from its operands instead of reading it back. */
  value(id: number, index: Index, fresh = false): Expr {
    const key = `${id}${fresh ? '!' : '@'}${exprKey(index.flat())}`;
    const known = this.built.get(key);
    if (known) return known;
    const e = !fresh && this.sources.isBuffered(id) ? this.sources.buffer(id, index) : this.compute(id, index);
    this.built.set(key, e);
    return e;
  }

  private compute(id: number, index: Index): Expr {
    const n = this.program.nodes[id];
    const arg = (i: number, idx: Index) => this.value(n.args[i], idx);
    switch (n.op.kind) {
      case 'input':
        return this.sources.input(n.op.name, index);
      case 'const':
        return float(n.op.value);
      case 'tril': {
        const [i, j] = index.dims();
        return select(compare('<=', j, i), float(1), float(0));
      }
      case 'unary':
        return { kind: 'unary', fn: n.op.fn, x: arg(0, index) };
      case 'binary':
        return floatOp(BINARY[n.op.fn], arg(0, index), arg(1, index));
      case 'expand':
        return arg(0, this.unexpand(n, index));
      case 'reshape':
        return arg(0, index.reshaped(this.program.nodes[n.args[0]].shape));
      case 'transpose': {
        const dims = index.dims();
        const source = new Array<Expr>(dims.length);
        n.op.perm.forEach((p, i) => (source[p] = dims[i]));
        return arg(0, index.at(this.program.nodes[n.args[0]].shape, source));
      }
      case 'matmul':
      case 'sum':
        throw new Error(`node %${id} (${n.op.kind}) must be buffered to be read inline`);
    }
  }

  private unexpand(n: Node, index: Index): Index {
    const from = this.program.nodes[n.args[0]].shape;
    const dims = index.dims();
    const off = n.shape.length - from.length;
    return index.at(
      from,
      from.map((size, i) => (size === 1 ? int(0) : dims[off + i])),
    );
  }
}
