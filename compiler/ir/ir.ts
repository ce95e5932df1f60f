/**
 * The one tensor IR: an SSA graph of small ops on f32/f64 tensors of any rank.
 * Elementwise ops take operands of equal shape; broadcasting is an explicit `expand`.
 */
import type { Span } from '../diagnostics/diagnostic.ts';

import { type Shape, sameShape, showShape, size } from '../../core/shape.ts';

export type { Shape };
export { sameShape, showShape, size };

export type UnaryFn = 'neg' | 'exp' | 'log' | 'tanh' | 'sqrt' | 'recip' | 'erf' | 'step';
export type BinaryFn = 'add' | 'sub' | 'mul' | 'div';

export type Op =
  | { kind: 'input'; name: string }
  | { kind: 'const'; value: number }
  /** 1 where column ≤ row, else 0: the causal mask of the dual form. Shape [n, n]. */
  | { kind: 'tril' }
  | { kind: 'unary'; fn: UnaryFn }
  | { kind: 'binary'; fn: BinaryFn }
  /** Batched matrix product: [...b, m, k] @ [...b, k, n] -> [...b, m, n]. */
  | { kind: 'matmul' }
  /** Sum over the listed axes, which are removed from the shape. */
  | { kind: 'sum'; axes: number[] }
  /** NumPy broadcast to `shape` (right-aligned; size-1 or equal dims). */
  | { kind: 'expand' }
  | { kind: 'reshape' }
  | { kind: 'transpose'; perm: number[] };

export interface Node {
  readonly id: number;
  readonly op: Op;
  readonly args: readonly number[];
  readonly shape: Shape;
  /** The spec text this node was lowered from, for readable printing and generated-code annotations. */
  readonly origin: Span | undefined;
}

export interface Port {
  name: string;
  node: number;
}

export interface Program {
  readonly nodes: readonly Node[];
  readonly inputs: readonly Port[];
  readonly outputs: readonly Port[];
}

export class IRError extends Error {}

/** Shape of the result of a matmul of `a` by `b`, or an error. */
function matmulShape(a: Shape, b: Shape): Shape {
  if (a.length < 2 || a.length !== b.length)
    throw new IRError(`matmul of ${showShape(a)} by ${showShape(b)}: ranks must match and be ≥ 2`);
  const r = a.length;
  for (let i = 0; i < r - 2; i++) {
    if (a[i] !== b[i]) throw new IRError(`matmul batch dims differ: ${showShape(a)} by ${showShape(b)}`);
  }
  if (a[r - 1] !== b[r - 2]) throw new IRError(`matmul inner dims differ: ${showShape(a)} by ${showShape(b)}`);
  return [...a.slice(0, r - 1), b[r - 1]];
}

function expandable(from: Shape, to: Shape): boolean {
  if (from.length > to.length) return false;
  const off = to.length - from.length;
  return from.every((d, i) => d === 1 || d === to[off + i]);
}

/**
 * Builds programs. Structurally equal nodes are shared (CSE by hash-consing) and trivial
 * algebra is folded as nodes are made, so every pass that builds IR gets both for free.
 */
export class Builder {
  readonly nodes: Node[] = [];
  readonly inputs: Port[] = [];
  private readonly interned = new Map<string, number>();
  /** Span attached to nodes made while it is set. */
  origin: Span | undefined;

  constructor(base?: Program) {
    if (base) {
      for (const n of base.nodes) this.push(n.op, n.args, n.shape, n.origin);
      this.inputs.push(...base.inputs);
    }
  }

  shape(id: number): Shape {
    return this.nodes[id].shape;
  }

  node(id: number): Node {
    return this.nodes[id];
  }

  private push(op: Op, args: readonly number[], shape: Shape, origin: Span | undefined): number {
    const key = op.kind === 'input' ? `input:${op.name}` : `${JSON.stringify(op)}|${args.join(',')}|${shape.join('x')}`;
    const found = this.interned.get(key);
    if (found !== undefined) return found;
    const id = this.nodes.length;
    this.nodes.push({ id, op, args, shape: [...shape], origin });
    this.interned.set(key, id);
    return id;
  }

  private make(op: Op, args: number[], shape: Shape): number {
    return this.push(op, args, shape, this.origin);
  }

  input(name: string, shape: Shape): number {
    const id = this.make({ kind: 'input', name }, [], shape);
    if (!this.inputs.some((p) => p.name === name)) this.inputs.push({ name, node: id });
    else if (!sameShape(this.shape(id), shape)) throw new IRError(`input ${name} declared twice with different shapes`);
    return id;
  }

  const(value: number, shape: Shape = []): number {
    return this.make({ kind: 'const', value }, [], shape);
  }

  tril(n: number): number {
    return this.make({ kind: 'tril' }, [], [n, n]);
  }

  /** The constant value of a node, when it is one. */
  constValue(id: number): number | undefined {
    const op = this.nodes[id].op;
    return op.kind === 'const' ? op.value : undefined;
  }

  unary(fn: UnaryFn, x: number): number {
    const c = this.constValue(x);
    // Folded so that no generated code applies a built-in function to constants: WGSL evaluates
    // those at compile time and refuses NaN or overflow. erf is a generated helper, left as is.
    if (c !== undefined && fn !== 'erf') return this.const(evalElementary(fn, c), this.shape(x));
    if (fn === 'neg') {
      const n = this.nodes[x];
      if (n.op.kind === 'unary' && n.op.fn === 'neg') return n.args[0];
    }
    return this.make({ kind: 'unary', fn }, [x], this.shape(x));
  }

  binary(fn: BinaryFn, a: number, b: number): number {
    const sa = this.shape(a);
    if (!sameShape(sa, this.shape(b))) throw new IRError(`${fn} of ${showShape(sa)} and ${showShape(this.shape(b))}`);
    const ca = this.constValue(a);
    const cb = this.constValue(b);
    if (ca !== undefined && cb !== undefined) return this.const(evalBinary(fn, ca, cb), sa);
    switch (fn) {
      case 'add':
        if (ca === 0) return b;
        if (cb === 0) return a;
        break;
      case 'sub':
        if (cb === 0) return a;
        if (ca === 0) return this.unary('neg', b);
        break;
      case 'mul':
        if (ca === 1) return b;
        if (cb === 1) return a;
        if (ca === 0 || cb === 0) return this.const(0, sa);
        if (ca === -1) return this.unary('neg', b);
        if (cb === -1) return this.unary('neg', a);
        break;
      case 'div':
        if (cb === 1) return a;
        if (ca === 0) return this.const(0, sa);
        break;
    }
    return this.make({ kind: 'binary', fn }, [a, b], sa);
  }

  add = (a: number, b: number): number => this.binary('add', a, b);
  sub = (a: number, b: number): number => this.binary('sub', a, b);
  mul = (a: number, b: number): number => this.binary('mul', a, b);
  div = (a: number, b: number): number => this.binary('div', a, b);
  neg = (a: number): number => this.unary('neg', a);

  /** `a * c` for a number c, broadcast to a's shape. */
  scale(a: number, c: number): number {
    return this.mul(a, this.const(c, this.shape(a)));
  }

  matmul(a: number, b: number): number {
    const shape = matmulShape(this.shape(a), this.shape(b));
    const ca = this.constValue(a);
    const cb = this.constValue(b);
    if (ca === 0 || cb === 0) return this.const(0, shape);
    if (ca !== undefined && cb !== undefined) return this.const(ca * cb * this.shape(b).at(-2)!, shape);
    return this.make({ kind: 'matmul' }, [a, b], shape);
  }

  sum(x: number, axes: readonly number[]): number {
    const s = this.shape(x);
    const sorted = [...new Set(axes)].sort((p, q) => p - q);
    if (sorted.some((a) => a < 0 || a >= s.length)) throw new IRError(`sum over axes ${sorted} of ${showShape(s)}`);
    if (sorted.length === 0) return x;
    const shape = s.filter((_, i) => !sorted.includes(i));
    const c = this.constValue(x);
    if (c !== undefined) return this.const(c * sorted.reduce((p, a) => p * s[a], 1), shape);
    return this.make({ kind: 'sum', axes: sorted }, [x], shape);
  }

  expand(x: number, shape: Shape): number {
    const s = this.shape(x);
    if (sameShape(s, shape)) return x;
    if (!expandable(s, shape)) throw new IRError(`cannot expand ${showShape(s)} to ${showShape(shape)}`);
    const c = this.constValue(x);
    if (c !== undefined) return this.const(c, shape);
    return this.make({ kind: 'expand' }, [x], shape);
  }

  reshape(x: number, shape: Shape): number {
    const s = this.shape(x);
    if (sameShape(s, shape)) return x;
    if (size(s) !== size(shape)) throw new IRError(`cannot reshape ${showShape(s)} to ${showShape(shape)}`);
    const n = this.nodes[x];
    if (n.op.kind === 'reshape') return this.reshape(n.args[0], shape);
    const c = this.constValue(x);
    if (c !== undefined) return this.const(c, shape);
    return this.make({ kind: 'reshape' }, [x], shape);
  }

  transpose(x: number, perm: readonly number[]): number {
    const s = this.shape(x);
    if (perm.length !== s.length || [...perm].sort().some((p, i) => p !== i))
      throw new IRError(`bad permutation ${perm} of ${showShape(s)}`);
    if (perm.every((p, i) => p === i)) return x;
    const n = this.nodes[x];
    if (n.op.kind === 'transpose') {
      const inner = n.op.perm;
      return this.transpose(
        n.args[0],
        perm.map((p) => inner[p]),
      );
    }
    const c = this.constValue(x);
    const shape = perm.map((p) => s[p]);
    if (c !== undefined) return this.const(c, shape);
    return this.make({ kind: 'transpose', perm: [...perm] }, [x], shape);
  }

  /** Swap the last two axes. */
  mT(x: number): number {
    const r = this.shape(x).length;
    const perm = [...Array(r).keys()];
    [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
    return this.transpose(x, perm);
  }

  /** Sum over the last axis, keeping it as size 1 (broadcast it back with `expand`). */
  lastAxisSum(x: number): number {
    const s = this.shape(x);
    const r = s.length;
    return this.reshape(this.sum(x, [r - 1]), [...s.slice(0, r - 1), 1]);
  }

  build(outputs: Port[]): Program {
    return prune({ nodes: this.nodes, inputs: this.inputs, outputs });
  }
}

/**
 * The f64 value of a unary op other than erf (which lives in erf.ts, outside this module that the
 * runtime loads).
 */
export function evalElementary(fn: Exclude<UnaryFn, 'erf'>, x: number): number {
  switch (fn) {
    case 'neg':
      return -x;
    case 'exp':
      return Math.exp(x);
    case 'log':
      return Math.log(x);
    case 'tanh':
      return Math.tanh(x);
    case 'sqrt':
      return Math.sqrt(x);
    case 'recip':
      return 1 / x;
    case 'step':
      return x > 0 ? 1 : 0;
  }
}

export function evalBinary(fn: BinaryFn, a: number, b: number): number {
  switch (fn) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mul':
      return a * b;
    case 'div':
      return a / b;
  }
}

/** Each node's readers: the ids of the nodes that take it as an argument, in program order. */
export function readersOf(p: Program): number[][] {
  const readers: number[][] = p.nodes.map(() => []);
  for (const n of p.nodes) for (const a of n.args) readers[a].push(n.id);
  return readers;
}

/** Keep only nodes the outputs depend on (inputs always stay), renumbered in order. */
export function prune(p: Program): Program {
  const live = new Set<number>();
  const stack = p.outputs.map((o) => o.node);
  while (stack.length) {
    const id = stack.pop()!;
    if (live.has(id)) continue;
    live.add(id);
    stack.push(...p.nodes[id].args);
  }
  for (const i of p.inputs) live.add(i.node);
  const remap = new Map<number, number>();
  const nodes: Node[] = [];
  for (const n of p.nodes) {
    if (!live.has(n.id)) continue;
    const id = nodes.length;
    remap.set(n.id, id);
    nodes.push({ ...n, id, args: n.args.map((a) => remap.get(a)!) });
  }
  return {
    nodes,
    inputs: p.inputs.map((i) => ({ name: i.name, node: remap.get(i.node)! })),
    outputs: p.outputs.map((o) => ({ name: o.name, node: remap.get(o.node)! })),
  };
}
