/**
 * Decides which nodes get a buffer and which are recomputed inline where they are read.
 * Products and reductions always get one (they are the expensive, many-times-read values);
 * elementwise and index ops are inlined when read once, or when cheap enough to repeat. Memory
 * can outweigh flops: a cheap elementwise or index value too large for on-chip memory (a K×K
 * decay or momentum coefficient matrix from cumulative products, or the transpose of a product
 * scaled by one, at a large mini-batch) is recomputed where it is read, even inside a product,
 * rather than given a K×K slice of global scratch, provided the large buffers it reads are read
 * as late by something else anyway (so recomputing it does not keep them alive longer).
 */
import { type Node, type Program, readersOf, size } from '../ir/ir.ts';

/** Rough cost of recomputing a node inline, in flops, when its buffered inputs are free to read. */
export function inlineCost(n: Node, cost: readonly number[]): number {
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
/** The most flops per element (about an exp and a dozen cheap ops) a value too large for on-chip memory may cost to be recomputed where read. */
const RECOMPUTE_FOR_MEMORY = 24;

export function chooseBuffers(
  p: Program,
  outputs: ReadonlySet<number>,
  /** The program keys of per-token inputs (views, rate). */
  perTokenInputs: ReadonlySet<string>,
  /** Elements that fit in on-chip memory: a larger buffer goes to global scratch. */
  onChipElements: number = Infinity,
): Set<number> {
  const uses = elementReads(p);
  const readInLoop = new Array<boolean>(p.nodes.length).fill(false);
  for (const n of p.nodes)
    for (const a of n.args) if (n.op.kind === 'matmul' || n.op.kind === 'sum') readInLoop[a] = true;
  for (const o of outputs) uses[o]++;
  const buffered = new Set<number>();
  const cost = new Array<number>(p.nodes.length).fill(0);
  const depth = new Array<number>(p.nodes.length).fill(0);
  const recomputed = recomputedForMemory(p, outputs, buffered, onChipElements);
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
    const memory = (repeated || inLoop) && !deep && c <= RECOMPUTE_FOR_MEMORY && recomputed(n);
    if (kind !== 'input' && kind !== 'const' && kind !== 'tril' && !memory && (repeated || inLoop || deep)) {
      buffered.add(n.id);
      cost[n.id] = 1;
    } else {
      cost[n.id] = c;
    }
  }
  return buffered;
}

/**
 * How many times each node's elements are read, were it inlined: once per reader, and once per
 * element of a broadcast (expand) that reads it, through the reshapes and transposes between. A
 * per-row value (a LayerNorm's reciprocal standard deviation) broadcast over a row's D elements
 * would otherwise be recomputed D times: its square root and division with each element.
 */
function elementReads(p: Program): number[] {
  const reads = new Array<number>(p.nodes.length).fill(0);
  const users = readersOf(p);
  for (let id = p.nodes.length - 1; id >= 0; id--)
    for (const u of users[id]) {
      const kind = p.nodes[u].op.kind;
      const passes = kind === 'expand' || kind === 'reshape' || kind === 'transpose';
      reads[id] += passes ? (size(p.nodes[u].shape) / size(p.nodes[id].shape)) * Math.max(1, reads[u]) : 1;
    }
  return reads;
}

/**
 * Whether a node, were it not buffered, could be recomputed where read to save global scratch:
 * it is elementwise or an index op, larger than on-chip memory and not an output, and every large
 * buffer it reads (through nodes inlined so far) is read as late by another reader anyway.
 * Lifetimes are estimated in program order (stages follow it): a node's value is needed up to
 * its last reader, or that reader's readers where it may be inlined (products and sums never are).
 */
function recomputedForMemory(
  p: Program,
  outputs: ReadonlySet<number>,
  buffered: ReadonlySet<number>,
  onChipElements: number,
): (n: Node) => boolean {
  const users = readersOf(p);
  const bufferedAlways = (id: number) => p.nodes[id].op.kind === 'matmul' || p.nodes[id].op.kind === 'sum';
  const reach = new Array<number>(p.nodes.length).fill(-1);
  const through = (u: number) => (bufferedAlways(u) ? u : Math.max(u, reach[u]));
  for (let id = p.nodes.length - 1; id >= 0; id--)
    reach[id] = Math.max(outputs.has(id) ? p.nodes.length : -1, ...users[id].map(through));
  const kinds = new Set(['unary', 'binary', 'transpose', 'reshape', 'expand']);
  return (n) => {
    if (!kinds.has(n.op.kind) || size(n.shape) <= onChipElements || outputs.has(n.id)) return false;
    // The inlined nodes n is computed from, each with the large buffers it reads.
    const reads = new Map<number, Set<number>>();
    const visit = (id: number): Set<number> => {
      const known = reads.get(id);
      if (known) return known;
      const own = new Set<number>();
      reads.set(id, own);
      if (buffered.has(id)) {
        if (size(p.nodes[id].shape) > onChipElements) own.add(id);
        return own;
      }
      for (const a of p.nodes[id].args) for (const b of visit(a)) own.add(b);
      return own;
    };
    const large = visit(n.id);
    const inlined = [...reads.keys()].filter((id) => !buffered.has(id));
    const tree = new Set(inlined);
    // A large buffer stays alive as long as any reader outside this tree of it, or of an inlined
    // node of the tree that reads it, needs it.
    const alive = new Map<number, number>([...large].map((b) => [b, -1]));
    for (const x of [...large, ...inlined.filter((id) => id !== n.id)])
      for (const u of users[x]) {
        if (tree.has(u)) continue;
        for (const b of reads.get(x)!) alive.set(b, Math.max(alive.get(b)!, through(u)));
      }
    return [...large].every((b) => alive.get(b)! >= reach[n.id]);
  };
}
