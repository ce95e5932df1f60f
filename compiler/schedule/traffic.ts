/**
 * How often each buffer's elements are read in one chunk, to decide what earns on-chip memory: a
 * product reads each operand element once per output column (or row), and an inlined node reads
 * its sources once per element it is evaluated at.
 */
import { type Program, size } from '../ir/ir.ts';
import type { Stage } from './kernel.ts';
import { stageRoots } from './reads.ts';

/** The key of a carried value's home: its program key (`state.NAME`, `accum.NAME`, `opt.NAME`). */
export type HomeKey = string;

/** Element reads per chunk, by buffered node id or home key. */
export function readsPerChunk(
  p: Program,
  stages: readonly Stage[],
  buffered: ReadonlySet<number>,
  homes: ReadonlySet<HomeKey>,
): Map<number | HomeKey, number> {
  const reads = new Map<number | HomeKey, number>();
  const add = (key: number | HomeKey, n: number) => reads.set(key, (reads.get(key) ?? 0) + n);
  for (const s of stages) {
    // Element evaluations of each inlined node in this stage, pushed down to what it reads.
    const evaluations = new Map<number, number>();
    const evaluate = (id: number, n: number) => evaluations.set(id, (evaluations.get(id) ?? 0) + n);
    if (s.kind === 'compute') {
      const n = p.nodes[s.node];
      const elements = size(n.shape);
      if (n.op.kind === 'matmul') {
        const inner = p.nodes[n.args[0]].shape.at(-1)!;
        n.args.forEach((a) => evaluate(a, elements * inner));
      } else if (n.op.kind === 'sum') evaluate(n.args[0], size(p.nodes[n.args[0]].shape));
      else n.args.forEach((a) => evaluate(a, elements));
    } else if (s.kind === 'output' || s.kind === 'gradient') evaluate(s.node, size(p.nodes[s.node].shape));
    else for (const id of stageRoots(s, p)) evaluate(id, size(p.nodes[id].shape));

    // Arguments have smaller ids, so one pass from the top reaches every path.
    for (const id of [...evaluations.keys()].sort((a, b) => b - a)) {
      const n = evaluations.get(id)!;
      const node = p.nodes[id];
      if (buffered.has(id) && !(s.kind === 'compute' && s.node === id)) add(id, n);
      else if (node.op.kind === 'input' && homes.has(node.op.name)) add(node.op.name, n);
      else if (node.op.kind === 'matmul') {
        // A product computed where it is read (in a state's update) reads its operands once per term.
        const inner = p.nodes[node.args[0]].shape.at(-1)!;
        for (const a of node.args) evaluate(a, n * inner);
      } else for (const a of node.args) evaluate(a, n);
    }
  }
  return reads;
}
