/** Emits the value of an IR node at an index as one expression, inlining every unbuffered node. */
import type { Node, Program } from '../../compiler/ir/ir.ts';
import type { Dialect } from './dialect.ts';
import { Index } from './index.ts';

export interface Memory {
  /** Read element `flat` of a buffered node. */
  buffer(node: number, flat: string): string;
  /** Read an input that has no buffer (scale, params, states, accumulators, mask, commit, keep). */
  input(name: string, index: Index): string;
  isBuffered(node: number): boolean;
}

const BINARY = { add: '+', sub: '-', mul: '*', div: '/' } as const;

export class ValueEmitter {
  constructor(
    private readonly program: Program,
    private readonly d: Dialect,
    private readonly memory: Memory,
  ) {}

  /** The node's value at `index`; `fresh` computes a buffered node from its operands instead of reading it back. */
  value(id: number, index: Index, fresh = false): string {
    if (!fresh && this.memory.isBuffered(id)) return this.memory.buffer(id, index.flat());
    const n = this.program.nodes[id];
    const arg = (i: number, idx: Index) => this.value(n.args[i], idx);
    switch (n.op.kind) {
      case 'input':
        return this.memory.input(n.op.name, index);
      case 'const':
        return this.d.float(n.op.value);
      case 'tril': {
        const [i, j] = index.dims();
        return this.d.select(`${j} <= ${i}`, this.d.float(1), this.d.float(0));
      }
      case 'unary':
        return this.d.unary(n.op.fn, arg(0, index));
      case 'binary':
        return `(${arg(0, index)} ${BINARY[n.op.fn]} ${arg(1, index)})`;
      case 'expand':
        return arg(0, this.unexpand(n, index));
      case 'reshape':
        return arg(0, index.reshaped(this.program.nodes[n.args[0]].shape));
      case 'transpose': {
        const dims = index.dims();
        const source = new Array<string>(dims.length);
        n.op.perm.forEach((p, i) => (source[p] = dims[i]));
        return arg(0, Index.dims(this.program.nodes[n.args[0]].shape, source));
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
    return Index.dims(
      from,
      from.map((size, i) => (size === 1 ? '0' : dims[off + i])),
    );
  }
}
