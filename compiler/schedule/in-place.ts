/**
 * In-place buffers: an elementwise stage may write its result over an operand's buffer when that
 * stage is the operand's last reader and reads it only at the element it writes. Each invocation
 * then reads element e and writes element e, and no other invocation touches e in that stage, so
 * no barrier is needed inside the stage; barriers between stages already follow address ranges.
 * At a large mini-batch this lets a chain of K×K coefficient products (the attention of the dual
 * form times a decay or momentum matrix) live in one K×K buffer instead of two.
 */
import { type Program, size } from '../ir/ir.ts';
import type { Stage } from './kernel.ts';

/**
 * The buffered nodes a stage computing `root` (elementwise) reads only at the element it writes:
 * reached from its operands through inlined unary, binary and reshape nodes alone (a reshape keeps
 * the flat index); any other path (an expand, transpose, reduction) reads other elements.
 */
function alignedReads(p: Program, root: number, isBuffered: (id: number) => boolean): Set<number> {
  const aligned = new Set<number>();
  const misaligned = new Set<number>();
  const seen = new Set<string>();
  const pending: [number, boolean][] = p.nodes[root].args.map((a) => [a, true]);
  while (pending.length > 0) {
    const [id, same] = pending.pop()!;
    const key = `${id}:${same}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (isBuffered(id)) {
      (same ? aligned : misaligned).add(id);
      continue;
    }
    const n = p.nodes[id];
    const keeps = n.op.kind === 'unary' || n.op.kind === 'binary' || n.op.kind === 'reshape';
    for (const a of n.args) pending.push([a, same && keeps && size(p.nodes[a].shape) === size(n.shape)]);
  }
  return new Set([...aligned].filter((id) => !misaligned.has(id)));
}

/**
 * For each compute stage that may write over an operand's buffer, its node and that operand. An
 * operand already given away (the result of an in-place stage) may be given again: the chain
 * shares one buffer.
 */
export function inPlaceOperands(
  p: Program,
  stages: readonly Stage[],
  isBuffered: (id: number) => boolean,
  lastRead: ReadonlyMap<number, number>,
): Map<number, number> {
  const over = new Map<number, number>();
  stages.forEach((s, i) => {
    if (s.kind !== 'compute') return;
    const n = p.nodes[s.node];
    if (n.op.kind !== 'unary' && n.op.kind !== 'binary') return;
    for (const operand of alignedReads(p, s.node, isBuffered)) {
      if (lastRead.get(operand) !== i || size(p.nodes[operand].shape) !== size(n.shape)) continue;
      over.set(s.node, operand);
      return;
    }
  });
  return over;
}
