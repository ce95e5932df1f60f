/**
 * Decides which nodes get a buffer and which are recomputed inline where they are read.
 * Products and reductions always get one (they are the expensive, many-times-read values);
 * elementwise and index ops are inlined when read once, or when cheap enough to repeat.
 */
import type { Node, Program } from '../ir/ir.ts';

/** Rough cost of recomputing a node inline, in flops, when its buffered inputs are free to read. */
function inlineCost(n: Node, cost: number[]): number {
  switch (n.op.kind) {
    case 'const':
    case 'tril':
      return 0;
    case 'input':
      return 1;
    case 'expand':
    case 'reshape':
    case 'transpose':
      return cost[n.args[0]];
    case 'unary':
      return cost[n.args[0]] + (n.op.fn === 'neg' || n.op.fn === 'step' ? 1 : 8);
    case 'binary':
      return cost[n.args[0]] + cost[n.args[1]] + 1;
    default:
      return 1;
  }
}

/** Nodes that are read by a loop over another axis (a product or reduction) re-read each element many times. */
const CHEAP_IN_LOOP = 4;
const CHEAP_TO_REPEAT = 3;
/**
 * The deepest chain of nodes inlined into one expression. Deeper chains (thousands of lets or
 * fns) get a buffer every so often: the expression stays readable, and neither the renderer nor
 * the target compilers meet unbounded nesting.
 */
const MAX_INLINE_DEPTH = 48;

export function chooseBuffers(
  p: Program,
  outputs: ReadonlySet<number>,
  /** The program keys of per-token inputs (views, rate). */
  perTokenInputs: ReadonlySet<string>,
): Set<number> {
  const uses = new Array<number>(p.nodes.length).fill(0);
  const readInLoop = new Array<boolean>(p.nodes.length).fill(false);
  for (const n of p.nodes) {
    for (const a of n.args) {
      uses[a]++;
      if (n.op.kind === 'matmul' || n.op.kind === 'sum') readInLoop[a] = true;
    }
  }
  for (const o of outputs) uses[o]++;
  const buffered = new Set<number>();
  const cost = new Array<number>(p.nodes.length).fill(0);
  const depth = new Array<number>(p.nodes.length).fill(0);
  for (const n of p.nodes) {
    depth[n.id] = 1 + Math.max(0, ...n.args.map((a) => (buffered.has(a) ? 0 : depth[a])));
    const kind = n.op.kind;
    // Per-token inputs are staged once per chunk: loading them is guarded (rows outside the chunk read 0).
    const perToken = n.op.kind === 'input' && perTokenInputs.has(n.op.name);
    if (kind === 'matmul' || kind === 'sum' || perToken) {
      buffered.add(n.id);
      cost[n.id] = 1;
      continue;
    }
    const c = inlineCost(n, cost);
    const repeated = uses[n.id] > 1 && c > CHEAP_TO_REPEAT;
    const inLoop = readInLoop[n.id] && c > CHEAP_IN_LOOP;
    const deep = depth[n.id] >= MAX_INLINE_DEPTH;
    if (kind !== 'input' && kind !== 'const' && kind !== 'tril' && (repeated || inLoop || deep)) {
      buffered.add(n.id);
      cost[n.id] = 1;
    } else {
      cost[n.id] = c;
    }
  }
  return buffered;
}
