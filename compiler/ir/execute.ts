/** The f64 reference executor: evaluates a program node by node on dense tensors. */
import { erf } from './erf.ts';
import {
  type BinaryFn,
  evalElementary,
  type Node,
  type Program,
  type UnaryFn,
  IRError,
  sameShape,
  showShape,
  size,
} from './ir.ts';
import { strides, type Tensor } from '../../core/tensor.ts';
import { roundBf16 } from '../../core/bf16.ts';

export function evalUnary(fn: UnaryFn, x: number): number {
  return fn === 'erf' ? erf(x) : evalElementary(fn, x);
}

function unary(fn: UnaryFn, x: Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = evalUnary(fn, x[i]);
  return out;
}

function binary(fn: BinaryFn, a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  // One loop per operation: K×K operands of large mini-batches make the per-element dispatch costly.
  switch (fn) {
    case 'add':
      for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
      break;
    case 'sub':
      for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
      break;
    case 'mul':
      for (let i = 0; i < a.length; i++) out[i] = a[i] * b[i];
      break;
    case 'div':
      for (let i = 0; i < a.length; i++) out[i] = a[i] / b[i];
      break;
  }
  return out;
}

function matmul(a: Tensor, b: Tensor, shape: readonly number[]): Float64Array {
  const r = shape.length;
  const m = shape[r - 2];
  const n = shape[r - 1];
  const k = a.shape[r - 1];
  const batch = size(shape.slice(0, r - 2));
  const out = new Float64Array(batch * m * n);
  for (let bt = 0; bt < batch; bt++) {
    const ao = bt * m * k;
    const bo = bt * k * n;
    const oo = bt * m * n;
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        const av = a.data[ao + i * k + p];
        if (av === 0) continue;
        const brow = bo + p * n;
        const orow = oo + i * n;
        for (let j = 0; j < n; j++) out[orow + j] += av * b.data[brow + j];
      }
    }
  }
  return out;
}

/** Walk every index of `shape`, calling `visit` with the flat output index and the multi-index. */
function forEachIndex(shape: readonly number[], visit: (flat: number, idx: number[]) => void): void {
  const n = size(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    visit(flat, idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

function sum(x: Tensor, axes: number[], shape: readonly number[]): Float64Array {
  const out = new Float64Array(size(shape));
  const os = strides(shape);
  const keep = x.shape.map((_, i) => !axes.includes(i));
  forEachIndex(x.shape, (flat, idx) => {
    let o = 0;
    let od = 0;
    for (let d = 0; d < idx.length; d++) if (keep[d]) o += idx[d] * os[od++];
    out[o] += x.data[flat];
  });
  return out;
}

function expand(x: Tensor, shape: readonly number[]): Float64Array {
  const out = new Float64Array(size(shape));
  const off = shape.length - x.shape.length;
  const xs = strides(x.shape);
  // The source stride of each output axis (0 where the axis is broadcast); the innermost axis runs in a plain loop.
  const step = shape.map((_, d) => (d < off || x.shape[d - off] === 1 ? 0 : xs[d - off]));
  const inner = shape.length ? shape[shape.length - 1] : 1;
  const innerStep = shape.length ? step[shape.length - 1] : 0;
  const outer = shape.slice(0, -1);
  forEachIndex(outer, (row, idx) => {
    let i = 0;
    for (let d = 0; d < idx.length; d++) i += idx[d] * step[d];
    const o = row * inner;
    for (let j = 0; j < inner; j++) out[o + j] = x.data[i + j * innerStep];
  });
  return out;
}

function transpose(x: Tensor, perm: number[], shape: readonly number[]): Float64Array {
  const out = new Float64Array(size(shape));
  const xs = strides(x.shape);
  forEachIndex(shape, (flat, idx) => {
    let i = 0;
    for (let d = 0; d < idx.length; d++) i += idx[d] * xs[perm[d]];
    out[flat] = x.data[i];
  });
  return out;
}

function evalNode(n: Node, vals: Tensor[], inputs: ReadonlyMap<string, Tensor>): Float64Array {
  const arg = (i: number) => vals[n.args[i]];
  switch (n.op.kind) {
    case 'input': {
      const t = inputs.get(n.op.name);
      if (!t) throw new IRError(`missing input ${n.op.name}`);
      if (!sameShape(t.shape, n.shape))
        throw new IRError(`input ${n.op.name} has shape ${showShape(t.shape)}, expected ${showShape(n.shape)}`);
      return t.data;
    }
    case 'const':
      return new Float64Array(size(n.shape)).fill(n.op.value);
    case 'tril': {
      const k = n.shape[0];
      const out = new Float64Array(k * k);
      for (let i = 0; i < k; i++) for (let j = 0; j <= i; j++) out[i * k + j] = 1;
      return out;
    }
    case 'unary':
      return unary(n.op.fn, arg(0).data);
    case 'binary':
      return binary(n.op.fn, arg(0).data, arg(1).data);
    case 'matmul':
      return matmul(arg(0), arg(1), n.shape);
    case 'sum':
      return sum(arg(0), n.op.axes, n.shape);
    case 'expand':
      return expand(arg(0), n.shape);
    case 'reshape':
      return arg(0).data;
    case 'transpose':
      return transpose(arg(0), n.op.perm, n.shape);
  }
}

/**
 * The arithmetic of an evaluation: f64, or every node's values rounded to f32 (what an f32 kernel
 * cannot do better than, up to the order of its sums: the floor a kernel's error is judged by), or
 * `bf16`: as f32, with every product's operands rounded to bf16 (what a kernel with bf16 products
 * and f32 accumulation computes, up to the order of its sums).
 */
export type Precision = 'f64' | 'f32' | 'bf16';

/** The values a node reads: for a product in `bf16`, its operands rounded. */
function operandsOf(n: Node, vals: Tensor[], precision: Precision): Tensor[] {
  if (precision !== 'bf16' || n.op.kind !== 'matmul') return vals;
  const rounded = [...vals];
  for (const a of n.args) rounded[a] = { shape: vals[a].shape, data: vals[a].data.map(roundBf16) };
  return rounded;
}

/** Run a program in f64 (or rounded to f32). Inputs are looked up by name; every output is returned by name. */
export function execute(
  p: Program,
  inputs: ReadonlyMap<string, Tensor> | Record<string, Tensor>,
  precision: Precision = 'f64',
): Map<string, Tensor> {
  const byName = inputs instanceof Map ? inputs : new Map(Object.entries(inputs));
  const vals: Tensor[] = new Array(p.nodes.length);
  for (const n of p.nodes) {
    const data = evalNode(n, operandsOf(n, vals, precision), byName);
    vals[n.id] = { shape: n.shape, data: precision === 'f64' ? data : data.map(Math.fround) };
  }
  return new Map(p.outputs.map((o) => [o.name, vals[o.node]]));
}
