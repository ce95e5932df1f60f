/**
 * Emits the value of an IR node at an index as an expression, inlining every unbuffered node; in
 * `statements`, an inlined value a statement reads more than once is computed once into a name.
 */
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

/** The value of a node at an index, as `ValueEmitter.value` gives it. */
export type ValueOf = (id: number, index: Index, fresh?: boolean) => string;

/** Reads per (node, index) while counting a statement; names and their definitions while binding. */
type Sharing =
  | { mode: 'count'; reads: Map<string, number> }
  | { mode: 'bind'; reads: Map<string, number>; names: Map<string, string>; lets: string[] };

export class ValueEmitter {
  private sharing: Sharing | undefined;
  private named = 0;

  constructor(
    private readonly program: Program,
    private readonly d: Dialect,
    private readonly memory: Memory,
  ) {}

  /**
   * The lines `build` writes, preceded by a named constant for every inlined arithmetic value they
   * read more than once at the same index (so a value is computed once and a line stays short).
   */
  statements(build: (value: ValueOf) => string[]): string[] {
    const value: ValueOf = (id, index, fresh) => this.value(id, index, fresh);
    const reads = new Map<string, number>();
    this.sharing = { mode: 'count', reads };
    build(value);
    const lets: string[] = [];
    this.sharing = { mode: 'bind', reads, names: new Map(), lets };
    try {
      const lines = build(value);
      return [...lets, ...lines];
    } finally {
      this.sharing = undefined;
    }
  }

  /** The node's value at `index`; `fresh` computes a buffered node from its operands instead of reading it back. */
  value(id: number, index: Index, fresh = false): string {
    const read = !fresh && this.memory.isBuffered(id);
    const kind = this.program.nodes[id].op.kind;
    const s = this.sharing;
    const compute = () => (read ? this.memory.buffer(id, index.flat()) : this.compute(id, index));
    if (fresh || !s || (!read && kind !== 'unary' && kind !== 'binary')) return compute();
    const key = `${id}@${index.flat()}`;
    if (s.mode === 'count') {
      const seen = s.reads.get(key) ?? 0;
      s.reads.set(key, seen + 1);
      return seen ? key : compute();
    }
    if ((s.reads.get(key) ?? 0) < 2) return compute();
    const known = s.names.get(key);
    if (known) return known;
    const expression = compute();
    const name = `v${this.named++}`;
    s.lets.push(this.d.constant(name, this.d.floatType, expression));
    s.names.set(key, name);
    return name;
  }

  private compute(id: number, index: Index): string {
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
